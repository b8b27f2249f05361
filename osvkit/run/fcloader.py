"""qemu-fc: put a QEMU guest into the state Firecracker leaves an x86_64 guest in.

osvkit generates a small loader per run and QEMU starts it as a **PVH ELF** with
``-kernel``; the target kernel file (any vmlinux ELF or bzImage Firecracker's loader takes,
read by :mod:`osvkit.firecracker.kernel`) is given unchanged as ``-initrd`` -- followed by the
user's initrd, in a temporary copy, when there is one -- which QEMU's PVH firmware (``pvh.bin``
on pc, qboot on microvm) lists as module 0 of ``hvm_start_info``.
Why this and not ``-device loader,file=...,force-raw=on`` at a scratch address: the module
list tells the loader exactly where the firmware put the file (top of RAM, clear of the
kernel), on both machines, with no address agreed in advance that firmware might also use;
and the kernel file is never modified.  The loader refuses to run when the module is missing
or its size differs from the file osvkit planned for.

What the loader does (32-bit protected mode, paging off, as PVH enters it):

1. copies the command line (``cmdline_paddr``, as given with ``-append`` plus -- on microvm
   -- the ``virtio_mmio.device=`` entries QEMU appends) into its own buffer, refusing more
   than 2047 bytes (Firecracker's CMDLINE_MAX_SIZE 2048 with the NUL);
2. runs a table of operations planned in Python (:func:`plan_loader`): zero RAM that is fresh
   in Firecracker -- ``[0, 0x9FC00)``, ``[0x9FC00, 0xA0000)`` and ``[1 MiB, loader)``, which
   covers every PT_LOAD including its bss --, copy each kernel PT_LOAD's ``p_filesz`` bytes to
   ``p_paddr`` (a bzImage's protected-mode part to ``code32_start``), move the initrd to
   where Firecracker puts it (top of RAM below 3 GiB, page-aligned; the copy runs backwards
   when the destination lies above the source, as it does here), and copy Firecracker's
   structures, all built by :mod:`osvkit.boot.firecracker`: GDT (0x500), boot_params with
   Firecracker's e820 for the memory size (0x7000; a bzImage's own setup header, the
   initrd's ``ramdisk_image``/``ramdisk_size``), page tables (0x9000-0xC000, 1 GiB identity
   map with 2 MiB pages) and MP table for the vCPU count (0x9FC00);
3. copies the command line to 0x20000 and sets ``cmdline_size`` = strlen + 1;
4. loads GDTR (0x500, limit 31), IDTR (0x520, limit 7), DS/ES/FS/GS/SS = 0x10, TR = 0x18,
   CR4 = 0x20 (PAE), CR3 = 0x9000, EFER.LME, CR0 = 0xE0000011, far-jumps to 0x08 (64-bit);
5. sets RFLAGS = 0x2, every GPR to 0 except RSP = RBP = 0x8FF0 and RSI = 0x7000, and jumps to
   the kernel's ``e_entry`` (a bzImage: ``code32_start + 0x200``).

With ``protocol="pvh"`` it reproduces Firecracker >= 1.12's PVH boot instead (what Firecracker
does for any ELF with a ``XEN_ELFNOTE_PHYS32_ENTRY`` note):
``hvm_start_info`` at 0x6000 (version 1, cmdline 0x20000, memmap 0x7000, the initrd as the
one module at 0x6040 when there is one, rsdp 0), the memmap with Firecracker's e820 ranges, the PVH GDT (code 0x00cf9b000000ffff,
TSS limit 0x67), the MP table; CR0 = 0x11, CR4 = 0, paging off, EBX = 0x6000, every other
GPR 0, RFLAGS = 2, jump to the PVH note's address in 32-bit code.  ``protocol="auto"`` is
Firecracker's own choice: PVH when the kernel has the note.

Checks, all before QEMU starts: Firecracker's loader rules (:mod:`osvkit.firecracker.kernel`);
every copy inside guest RAM (Firecracker cannot load a kernel outside it) and clear of what
Firecracker writes after loading (:func:`firecracker_areas`: it would overwrite the kernel
there; ``[0x9FC00, 1 MiB)`` is also BIOS and VGA space on QEMU's machines); the initrd no
larger than the RAM below 3 GiB (Firecracker's rule) and clear of the kernel and the loader.
OSv's boot contract is not checked: it is ``osvkit build``'s requirement, not Firecracker's.

Fidelity notes (what differs from Firecracker/KVM and why):

* CR0 = 0xE0000011: Firecracker ORs PE|PG into KVM's reset CR0 (0x60000010, CD|NW|ET).
  QEMU TCG stores CD and NW as written (it models no caches), so the value is reproduced
  exactly; on real hardware CD|NW would make the loader slow, which is why KVM guests see it
  only until the kernel rewrites CR0.
* TR: ``ltr`` only accepts an *available* TSS, and in long mode would read a 16-byte
  descriptor past the 32-byte GDT.  The loader therefore writes the TSS descriptor with type
  0x9, loads TR while still in 32-bit protected mode, and the CPU marks it busy (0xB): the GDT
  bytes end up exactly Firecracker's ``0x008f8b000000ffff``.
* Not reproduced: MSRs (TSC, MISC_ENABLE, MTRRdefType), LAPIC LVT values, CPUID, FPU state
  beyond reset, and ACPI -- on ``pc`` SeaBIOS's ACPI tables stay visible in the (write-
  protected) F-segment, so a guest that prefers ACPI sees QEMU's MADT; ``microvm`` with
  ``acpi=off`` has none (use it for an MP-table-only machine).  The loader's own pages
  (above the kernel) and the firmware's copy of the kernel (top of RAM) are not zeroed.
* Application processors stay in QEMU's wait-for-SIPI state; only the BSP runs the loader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import layout
from ..asm import assemble, byte_directive, far_jump32
from ..structs import base as schema
from ..structs.base import field_offsets
from ..structs import elf
from ..structs import fcloader as fcs
from ..structs import offsets as off
from ..boot import firecracker as fc
from ..boot import pvh as pvh_boot
from ..errors import KernelError, LayoutError, UsageError
from ..image.kernel import Kernel
from ..firecracker.kernel import FcKernel, initrd_address, parse_fc_kernel, read_fc_kernel

LOADER_NAME = "osvkit-fc-loader"
CMDLINE_MAX = layout.FC_CMDLINE_MAX_SIZE - 1
"""2047 visible bytes; with the NUL 2048 (Firecracker's CMDLINE_MAX_SIZE)."""

# Firecracker's control registers for the Linux 64-bit boot
FC_CR0 = 0xE000_0011
"""KVM reset CR0 0x60000010 (CD|NW|ET) | PE | PG."""
FC_CR4 = 0x20
"""PAE."""
FC_EFER_LME = 0x100
"""LME; the CPU sets LMA (0x400) when paging is enabled: EFER = 0x500."""
MSR_EFER = 0xC000_0080
FC_SEL_CODE = 0x08
FC_SEL_DATA = 0x10
FC_SEL_TSS = 0x18
FC_RFLAGS = 0x2
TSS_AVAILABLE = 0x89
TSS_BUSY = 0x8B

PROTOCOLS = ("linux", "pvh", "auto")
"""``auto`` is Firecracker's own choice: PVH when the kernel has the note, else Linux."""

FC_PVH_CR0 = 0x11
"""PE | ET exactly (Firecracker sets CR0 to this for PVH, not OR-ed into the reset value)."""

OP_END, OP_ZERO, OP_MODULE, OP_LOADER = 0, 1, 2, 3
OP_NAMES = {OP_ZERO: "zero", OP_MODULE: "copy-kernel", OP_LOADER: "copy-structure"}

# Loader segment layout (offsets from LOADER base)
L_CODE32 = 0x0000
PVH_TAIL = 0x0500        # (from L_CODE32) the PVH protocol's final 32-bit code
L_CODE64 = 0x0600
L_VARS = 0x0700          # u64 entry, u32 module base, u32 cmdline length
L_MSGS = 0x0780
L_DESC = 0x0900          # gdt desc (6 bytes) @+0, idt desc @+8, zero idt desc @+16
L_OPS = 0x0A00           # 16-byte ops, up to 96
L_DATA = 0x1000
MAX_OPS = (L_DATA - L_OPS) // fcs.LOADER_OP_SIZE - 1     # and the OP_END entry
STACK_SIZE = 0x1000
LOADER_ALIGN = layout.FC_LOADER_ALIGN

MESSAGES = {
    "no_module": b"osvkit-fc-loader: no kernel module (give the kernel file with -initrd)\n\0",
    "size": b"osvkit-fc-loader: kernel module size differs from the planned kernel\n\0",
    "cmdline": b"osvkit-fc-loader: command line over 2047 bytes (Firecracker's limit)\n\0",
}


@dataclass
class LoaderPlan:
    """What the generated loader will do, for tests and ``--json`` output."""

    loader_addr: int
    loader_size: int
    kernel_size: int
    kernel_entry: int
    memory: int
    cpus: int
    e820: list[tuple[int, int, int]]
    ops: list[tuple[str, int, int, int]] = field(default_factory=list)  # (op, dst, src, len)
    protocol: str = "linux"
    kind: str = "elf"
    initrd: list[int] | None = None
    """``[address, size]`` of the initrd, where Firecracker puts it."""

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "loader_addr": self.loader_addr, "loader_size": self.loader_size,
                "kernel_size": self.kernel_size, "kernel_entry": self.kernel_entry,
                "memory": self.memory, "cpus": self.cpus,
                "kind": self.kind, "initrd": self.initrd,
                "e820": [list(e) for e in self.e820],
                "ops": [list(o) for o in self.ops]}


def fc_gdt_for_ltr(protocol: str = "linux") -> bytes:
    """Firecracker's GDT for ``protocol`` with the TSS descriptor marked *available*;
    ``ltr`` marks it busy again, leaving Firecracker's exact bytes at 0x500."""
    gdt = bytearray(fc.firecracker_gdt(protocol))
    access = 3 * 8 + 5
    assert gdt[access] == TSS_BUSY
    gdt[access] = TSS_AVAILABLE
    return bytes(gdt)


def _align(v: int, a: int) -> int:
    return (v + a - 1) & ~(a - 1)


def as_fc_kernel(kernel) -> FcKernel:
    """``kernel`` as Firecracker's loader reads it: an :class:`FcKernel`, a path, or an
    :class:`osvkit.image.kernel.Kernel` (re-read from its bytes)."""
    if isinstance(kernel, FcKernel):
        return kernel
    if isinstance(kernel, Kernel):
        return parse_fc_kernel(kernel.data, path=kernel.path)
    return read_fc_kernel(kernel)


def firecracker_areas(protocol: str) -> list[tuple[str, int, int]]:
    """Guest memory Firecracker writes after loading the kernel, for ``protocol``:
    ``(name, start, end)``.  ``[0x9FC00, 1 MiB)`` is its system data (MP table, ACPI,
    RSDP) -- and on QEMU's machines BIOS, VGA and option-ROM space, not plain RAM."""
    areas = [("the boot GDT/IDT", layout.FC_GDT_ADDR, layout.FC_IDT_ADDR + layout.FC_IDT_SIZE)]
    if protocol == "pvh":
        areas += [("the PVH start_info", layout.FC_PVH_INFO_ADDR,
                   layout.FC_PVH_MODLIST_ADDR + off.HVM_MODLIST_ENTRY["sizeof"]),
                  ("the PVH memmap", layout.FC_PVH_MEMMAP_ADDR,
                   layout.FC_PVH_MEMMAP_ADDR + layout.FC_ZERO_PAGE_SIZE)]
    else:
        areas += [("the zero page", layout.FC_ZERO_PAGE_ADDR,
                   layout.FC_ZERO_PAGE_ADDR + layout.FC_ZERO_PAGE_SIZE),
                  ("the boot page tables", layout.FC_PML4_ADDR, layout.FC_PAGE_TABLES_END)]
    areas += [("the command line", layout.FC_CMDLINE_ADDR,
               layout.FC_CMDLINE_ADDR + layout.FC_CMDLINE_MAX_SIZE),
              ("the MP table/ACPI area and BIOS space", layout.FC_SYSTEM_MEM_START,
               layout.FC_HIMEM_START)]
    return areas


def _what(kernel: FcKernel) -> str:
    return "PT_LOAD" if kernel.kind == "elf" else "the bzImage's kernel"


def _check_pieces(kernel: FcKernel, memory: int, protocol: str) -> None:
    """Every copy inside guest RAM and clear of what Firecracker writes afterwards."""
    for p in kernel.pieces:
        if p.dst + p.size > memory:
            need = _align(p.dst + p.size, layout.MiB) // layout.MiB + 1
            raise LayoutError(f"{_what(kernel)} at {p.dst:#x}-{p.dst + p.size:#x} lies beyond "
                              f"the guest's {memory // layout.MiB} MiB of RAM (the kernel does "
                              "not fit: Firecracker refuses to load it)",
                              expected=f"more guest memory (at least {need} MiB)",
                              path=kernel.path)
        for name, start, end in firecracker_areas(protocol):
            if p.dst < end and start < p.end:
                raise LayoutError(f"{_what(kernel)} at {p.dst:#x}-{p.end:#x} overlaps {name} "
                                  f"({start:#x}-{end:#x}), which Firecracker writes over the "
                                  "loaded kernel", expected="segments clear of Firecracker's "
                                  "boot structures (low memory below 1 MiB)", path=kernel.path)


def _zero_page(kernel: FcKernel, e820, ramdisk) -> bytes:
    """Firecracker's zero page: from scratch for an ELF, from the image's own setup header for
    a bzImage (with the loader fields Firecracker sets)."""
    if kernel.setup_header is None:
        return fc.firecracker_boot_params(0, e820, ramdisk=ramdisk)
    from ..boot import bootparams

    hdr = dict(kernel.setup_header, type_of_loader=fc.FC_LOADER_TYPE,
               cmd_line_ptr=layout.FC_CMDLINE_ADDR, cmdline_size=1)
    if ramdisk:
        hdr.update(ramdisk_image=ramdisk[0], ramdisk_size=ramdisk[1])
    return bootparams.build_boot_params(hdr=hdr, e820=e820, acpi_rsdp_addr=layout.FC_RSDP_ADDR)


def plan_loader(kernel, *, memory: int, cpus: int, protocol: str = "linux",
                initrd_size: int | None = None) -> tuple[LoaderPlan, bytes, bytes]:
    """Plan the loader for ``kernel`` (see :func:`as_fc_kernel`) in a guest of ``memory``
    bytes with ``cpus`` vCPUs and an optional initrd of ``initrd_size`` bytes; return the
    plan, the loader's data area (structures to copy) and the operation table."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"Firecracker boot protocol {protocol!r}", expected=" or ".join(PROTOCOLS))
    if not 1 <= cpus <= fc.FC_MAX_SUPPORTED_CPUS:      # a bad argument, before the MP table
        raise UsageError(f"{cpus} vCPUs", expected=f"1 to {fc.FC_MAX_SUPPORTED_CPUS} "
                                                   "(the MP table's limit)")
    kernel = as_fc_kernel(kernel)
    if memory > layout.FC_MMIO32_START:
        raise LayoutError(f"qemu-fc guest memory {memory:#x}",
                          expected="at most 3 GiB (QEMU's and Firecracker's maps differ above)")
    if protocol == "auto":
        protocol = kernel.firecracker_protocol
    if protocol == "pvh":
        entry = kernel.pvh_entry
        if entry is None:
            raise KernelError("no XEN_ELFNOTE_PHYS32_ENTRY note" + (
                "; Firecracker boots a bzImage only with the 64-bit Linux protocol"
                if kernel.kind == "bzimage" else ""), path=kernel.path,
                expected="a PVH kernel for --fc-protocol pvh (an ELF with the note, e.g. "
                         "osvkit build --format vmlinux --pvh)")
    else:
        entry = kernel.entry
    _check_pieces(kernel, memory, protocol)
    ramdisk = None
    if initrd_size is not None:
        ramdisk = (initrd_address(memory, initrd_size), initrd_size)
    e820 = fc.firecracker_e820(memory)
    structures = [(layout.FC_GDT_ADDR, fc_gdt_for_ltr(protocol))]
    if protocol == "pvh":
        structures += [(layout.FC_PVH_INFO_ADDR,
                        fc.firecracker_pvh_start_info(len(e820), nr_modules=1 if ramdisk else 0))]
        if ramdisk:
            structures.append((layout.FC_PVH_MODLIST_ADDR, pvh_boot.build_modlist([(*ramdisk, 0)])))
        structures.append((layout.FC_PVH_MEMMAP_ADDR, fc.firecracker_pvh_memmap(e820)))
    else:
        structures += [(layout.FC_ZERO_PAGE_ADDR, _zero_page(kernel, e820, ramdisk)),
                       (layout.FC_PML4_ADDR, fc.firecracker_page_tables())]
    structures.append((layout.FC_MPTABLE_ADDR, fc.firecracker_mptable(cpus)))
    return _plan(kernel, memory=memory, cpus=cpus, e820=e820, entry=entry,
                 structures=structures, protocol=protocol, ramdisk=ramdisk)


def _plan(kernel: FcKernel, *, memory: int, cpus: int, e820, entry: int, structures,
          protocol: str, ramdisk):
    loader_addr = _align(max(kernel.kernel_end, layout.KERNEL_BASE_ADDR), LOADER_ALIGN)
    # data area: structures Firecracker writes, copied by OP_LOADER ops
    data = bytearray()
    ops: list[tuple[int, int, int, int]] = []

    def zero(dst: int, end: int):
        ops.append((OP_ZERO, dst, 0, end - dst))

    def put(dst: int, blob: bytes):
        while len(data) % 16:
            data.append(0)
        src = loader_addr + L_DATA + len(data)
        data.extend(blob)
        ops.append((OP_LOADER, dst, src, len(blob)))

    zero(0, layout.FC_SYSTEM_MEM_START)
    zero(layout.FC_SYSTEM_MEM_START, layout.LOW_RAM_END)
    zero(layout.FC_HIMEM_START, loader_addr)
    for p in kernel.pieces:
        ops.append((OP_MODULE, p.dst, p.offset, p.size))
    if ramdisk:     # the initrd follows the kernel file in the module
        ops.append((OP_MODULE, ramdisk[0], len(kernel.data), ramdisk[1]))
    for dst, blob in structures:
        put(dst, blob)
    if len(ops) > MAX_OPS:
        raise LayoutError(f"{len(ops)} loader operations (kernel PT_LOADs)",
                          expected=f"at most {MAX_OPS}", path=kernel.path)
    loader_size = L_DATA + _align(len(data), 16) + layout.FC_CMDLINE_MAX_SIZE + STACK_SIZE
    loader_end = loader_addr + loader_size
    module_size = len(kernel.data) + (ramdisk[1] if ramdisk else 0)
    # QEMU puts the -initrd module just below top of RAM (minus its ACPI/firmware reserve)
    need = _align(loader_end + module_size, layout.MiB) + 2 * layout.MiB
    if ramdisk and ramdisk[0] < loader_end:
        need = max(need, _align(loader_end + ramdisk[1], layout.MiB))
        raise LayoutError(f"the initrd ({ramdisk[1]} bytes) does not fit: Firecracker puts it at "
                          f"{ramdisk[0]:#x} (top of RAM), over the kernel (to "
                          f"{kernel.kernel_end:#x}) or qemu-fc's loader (to {loader_end:#x})",
                          expected=f"more guest memory (at least {need // layout.MiB} MiB)")
    if need > memory or loader_end > layout.IDENTITY_MAP_END:
        raise LayoutError(f"guest memory of {memory // layout.MiB} MiB is too small for the "
                          f"kernel (to {kernel.kernel_end:#x}), the loader and the kernel file "
                          "as module", expected=f"at least {need // layout.MiB} MiB")
    plan = LoaderPlan(loader_addr=loader_addr, loader_size=loader_size,
                      kernel_size=module_size, kernel_entry=entry,
                      memory=memory, cpus=cpus, e820=e820,
                      ops=[(OP_NAMES[op], dst, src, ln) for op, dst, src, ln in ops],
                      protocol=protocol, kind=kernel.kind,
                      initrd=list(ramdisk) if ramdisk else None)
    return plan, bytes(data), op_table(ops)


def op_table(ops) -> bytes:
    """The loader's operation table for ``(op, dst, src, length)`` tuples, ended by OP_END."""
    return b"".join(schema.build(fcs.LoaderOp, dict(op=op, dst=dst, src=src, length=ln),
                                 what="loader operation")
                    for op, dst, src, ln in [*ops, (OP_END, 0, 0, 0)])


def _code32(base: int, plan: LoaderPlan, cmdbuf: int, stack_top: int) -> str:
    si, mod, bp = off.START_INFO, off.HVM_MODLIST_ENTRY, off.BOOT_PARAMS
    lv = fcs.LOADER_VARS_OFFSETS
    op = field_offsets(fcs.LoaderOp)
    dp = fcs.DESCRIPTOR_POINTER_SIZE
    v = base + L_VARS
    m = {k: base + L_MSGS + i * 0x80 for i, k in enumerate(MESSAGES)}
    d = base + L_DESC
    code64 = base + L_CODE64
    if plan.protocol == "linux":
        set_cmdline_size = f"    movl %ecx, {layout.FC_ZERO_PAGE_ADDR + bp['cmdline_size']:#x}"
        tail = f"""
    movl ${FC_CR4:#x}, %eax
    movl %eax, %cr4
    movl ${layout.FC_PML4_ADDR:#x}, %eax
    movl %eax, %cr3
    movl ${MSR_EFER:#x}, %ecx
    rdmsr
    orl ${FC_EFER_LME:#x}, %eax
    wrmsr
    movl ${FC_CR0:#x}, %eax
    movl %eax, %cr0
{byte_directive(far_jump32(FC_SEL_CODE, code64))}
"""
    else:   # PVH: 32-bit protected mode, paging off, CR0 = 0x11, CR4 = 0, EBX = start_info
        set_cmdline_size = ""
        tail = f"""
    movl $0x0, %eax
    movl %eax, %cr4
    movl ${FC_PVH_CR0:#x}, %eax
    movl %eax, %cr0
{byte_directive(far_jump32(FC_SEL_CODE, base + L_CODE32 + PVH_TAIL))}
"""
    return f"""
    cli
    cld
    movl ${stack_top:#x}, %esp
    cmpl $0x1, {si['nr_modules']:#x}(%ebx)
    jb fail_no_module
    movl {si['modlist_paddr']:#x}(%ebx), %esi
    movl {mod['paddr']:#x}(%esi), %eax
    movl %eax, {v + lv['module']:#x}
    movl {mod['size']:#x}(%esi), %eax
    cmpl ${plan.kernel_size:#x}, %eax
    jne fail_size
    movl {si['cmdline_paddr']:#x}(%ebx), %esi
    movl ${cmdbuf:#x}, %edi
    xorl %ecx, %ecx
    testl %esi, %esi
    jz cmd_done
cmd_loop:
    movb (%esi,%ecx), %al
    testb %al, %al
    jz cmd_done
    cmpl ${CMDLINE_MAX:#x}, %ecx
    jae fail_cmdline
    movb %al, (%edi,%ecx)
    incl %ecx
    jmp cmd_loop
cmd_done:
    movb $0x0, (%edi,%ecx)
    movl %ecx, {v + lv['cmdline_length']:#x}
    movl ${base + L_OPS:#x}, %ebp
op_loop:
    movl {op['op']:#x}(%ebp), %eax
    movl {op['dst']:#x}(%ebp), %edi
    movl {op['src']:#x}(%ebp), %esi
    movl {op['length']:#x}(%ebp), %edx
    cmpl ${OP_ZERO:#x}, %eax
    je op_zero
    cmpl ${OP_MODULE:#x}, %eax
    je op_module
    cmpl ${OP_LOADER:#x}, %eax
    je op_copy
    jmp ops_done
op_zero:
    xorl %eax, %eax
    movl %edx, %ecx
    shrl $0x2, %ecx
    rep stosl
    movl %edx, %ecx
    andl $0x3, %ecx
    rep stosb
    jmp op_next
op_module:
    addl {v + lv['module']:#x}, %esi
    cmpl %esi, %edi
    jbe op_copy
    leal -0x1(%esi,%edx), %esi
    leal -0x1(%edi,%edx), %edi
    movl %edx, %ecx
    std
    rep movsb
    cld
    jmp op_next
op_copy:
    movl %edx, %ecx
    shrl $0x2, %ecx
    rep movsl
    movl %edx, %ecx
    andl $0x3, %ecx
    rep movsb
op_next:
    addl ${fcs.LOADER_OP_SIZE:#x}, %ebp
    jmp op_loop
ops_done:
    movl ${cmdbuf:#x}, %esi
    movl ${layout.FC_CMDLINE_ADDR:#x}, %edi
    movl {v + lv['cmdline_length']:#x}, %ecx
    incl %ecx
{set_cmdline_size}
    rep movsb
    movl ${d:#x}, %eax
    lgdt (%eax)
    movl ${d + dp:#x}, %eax
    lidt (%eax)
    movl ${FC_SEL_DATA:#x}, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    movl ${FC_SEL_TSS:#x}, %eax
    ltr %ax
{tail}
fail_no_module:
    movl ${m['no_module']:#x}, %esi
    jmp fail
fail_size:
    movl ${m['size']:#x}, %esi
    jmp fail
fail_cmdline:
    movl ${m['cmdline']:#x}, %esi
fail:
    movw ${layout.COM1_PORT:#x}, %dx
fail_print:
    movb (%esi), %al
    testb %al, %al
    jz fail_stop
    outb %al, %dx
    incl %esi
    jmp fail_print
fail_stop:
    movl ${d + 2 * dp:#x}, %eax
    lidt (%eax)
    int3
"""


def _code64(base: int, stack_top: int) -> str:
    v = base + L_VARS
    zero_regs = "\n".join(f"    movl $0x0, %{r}" for r in
                          ("eax", "ebx", "ecx", "edx", "edi", "r8d", "r9d", "r10d", "r11d",
                           "r12d", "r13d", "r14d", "r15d"))
    return f"""
    movl ${stack_top:#x}, %esp
    pushq ${FC_RFLAGS:#x}
    popfq
{zero_regs}
    movl ${layout.FC_BOOT_STACK_ADDR:#x}, %esp
    movl ${layout.FC_BOOT_STACK_ADDR:#x}, %ebp
    movl ${layout.FC_ZERO_PAGE_ADDR:#x}, %esi
    jmpq *{v + fcs.LOADER_VARS_OFFSETS['entry']:#x}
"""


def _pvh_tail(base: int, stack_top: int) -> str:
    """32-bit code run from Firecracker's PVH code selector: RFLAGS = 2, EBX = start_info,
    every other GPR (ESP and EBP too) 0, jump to the PVH note's entry."""
    v = base + L_VARS
    zero = "\n".join(f"    movl $0x0, %{r}" for r in ("eax", "ecx", "edx", "esi", "edi", "ebp"))
    return f"""
    movl ${stack_top:#x}, %esp
    pushl ${FC_RFLAGS:#x}
    popfl
{zero}
    movl ${layout.FC_PVH_INFO_ADDR:#x}, %ebx
    movl $0x0, %esp
    jmp *{v + fcs.LOADER_VARS_OFFSETS['entry']:#x}
"""


def build_loader(kernel, *, memory: int, cpus: int = 1, protocol: str = "linux",
                 initrd_size: int | None = None) -> tuple[bytes, LoaderPlan]:
    """The loader ELF (bytes) for ``kernel`` and its plan; ``protocol`` "linux" (the 64-bit
    boot protocol, e_entry), "pvh" (Firecracker >= 1.12 with a PVH note) or "auto"
    (Firecracker's choice); ``initrd_size`` when an initrd follows the kernel in the module."""
    plan, data, opbytes = plan_loader(kernel, memory=memory, cpus=cpus, protocol=protocol,
                                      initrd_size=initrd_size)
    base = plan.loader_addr
    cmdbuf = base + L_DATA + _align(len(data), 16)
    stack_top = cmdbuf + layout.FC_CMDLINE_MAX_SIZE + STACK_SIZE
    code32 = assemble(_code32(base, plan, cmdbuf, stack_top), bits=32, base=base + L_CODE32)
    code64 = assemble(_code64(base, stack_top), bits=64, base=base + L_CODE64)
    seg = bytearray(plan.loader_size)

    def place(at: int, blob: bytes, end: int):
        if at + len(blob) > end:  # pragma: no cover - layout bug
            raise AssertionError(f"loader part at {at:#x} overruns {end:#x}")
        seg[at:at + len(blob)] = blob

    place(L_CODE32, code32, L_CODE32 + PVH_TAIL)
    if plan.protocol == "pvh":
        place(L_CODE32 + PVH_TAIL,
              assemble(_pvh_tail(base, stack_top), bits=32, base=base + L_CODE32 + PVH_TAIL),
              L_CODE64)
    place(L_CODE64, code64, L_VARS)
    place(L_VARS, schema.build(fcs.LoaderVars, dict(entry=plan.kernel_entry, module=0,
                                                    cmdline_length=0), what="loader variables"),
          L_MSGS)
    for i, msg in enumerate(MESSAGES.values()):
        place(L_MSGS + i * 0x80, msg, L_MSGS + (i + 1) * 0x80)
    desc = b"".join(schema.build(fcs.DescriptorPointer32, dict(limit=limit, base=addr),
                                 what="descriptor pointer")
                    for limit, addr in ((layout.FC_GDT_SIZE - 1, layout.FC_GDT_ADDR),
                                        (layout.FC_IDT_SIZE - 1, layout.FC_IDT_ADDR), (0, 0)))
    place(L_DESC, desc, L_OPS)
    place(L_OPS, opbytes, L_DATA)
    place(L_DATA, data, plan.loader_size)
    return _pvh_elf(bytes(seg), base), plan


def _pvh_elf(segment: bytes, base: int) -> bytes:
    """A minimal ELF64 x86-64 with one PT_LOAD at ``base`` and a PVH note naming ``base``."""
    note = schema.build(elf.Elf64_Note, dict(
        n_type=elf.XEN_ELFNOTE_PHYS32_ENTRY, name=b"Xen\0",
        desc=schema.build(elf.Elf64_Addr, base + L_CODE32)), what="PVH note")
    note_off, seg_off = 0x100, 0x1000
    ehdr = schema.build(elf.Elf64_Ehdr, dict(
        e_ident=dict(), e_type=elf.ET_EXEC, e_machine=elf.EM_X86_64, e_entry=base + L_CODE32,
        e_phoff=elf.EHDR_SIZE, e_shoff=0, e_phnum=2, e_shnum=0, e_shstrndx=0), what="ELF header")
    phdrs = schema.build(elf.Elf64_Phdr, dict(
        p_type=elf.PT_LOAD, p_flags=elf.PF_R | elf.PF_W | elf.PF_X, p_offset=seg_off,
        p_vaddr=base, p_paddr=base, p_filesz=len(segment), p_memsz=len(segment),
        p_align=0x1000), what="program header")
    phdrs += schema.build(elf.Elf64_Phdr, dict(
        p_type=elf.PT_NOTE, p_flags=elf.PF_R, p_offset=note_off, p_vaddr=0, p_paddr=0,
        p_filesz=len(note), p_memsz=len(note), p_align=elf.NOTE_ALIGN), what="program header")
    head = bytearray(seg_off)
    head[0:len(ehdr)] = ehdr
    head[elf.EHDR_SIZE:elf.EHDR_SIZE + len(phdrs)] = phdrs
    head[note_off:note_off + len(note)] = note
    return bytes(head) + segment


build_fc_loader = build_loader


def check_fc_cmdline(cmdline: str) -> str:
    """Refuse a command line Firecracker would refuse (over 2047 bytes, NUL inside)."""
    from ..cmdline import check_cmdline

    check_cmdline(cmdline, "firecracker")
    return cmdline


__all__ = ["build_loader", "build_fc_loader", "plan_loader", "run_qemu_fc", "qemu_fc_argv",
           "mmio_cmdline", "LoaderPlan", "check_fc_cmdline", "PROTOCOLS"]


# ---------------------------------------------------------------------------------------
# Running: osvkit run KERNEL --vmm qemu-fc
# ---------------------------------------------------------------------------------------

def qemu_fc_argv(module, loader_path, *, machine: str = "pc", cmdline: str = "",
                 memory="256M", cpus: int = 1, disk=None, accel: str = "tcg") -> list[str]:
    """QEMU starts the loader as a PVH kernel with ``module`` (the kernel file, followed by
    the initrd when there is one) as its ``-initrd``."""
    import os

    from .pvh import check_disk_cmdline, disk_argv, machine_argv

    check_disk_cmdline(machine, disk, cmdline)
    return machine_argv(machine, memory=memory, cpus=cpus, accel=accel) + \
        ["-kernel", os.fspath(loader_path), "-initrd", os.fspath(module), "-append", cmdline] + \
        disk_argv(machine, disk)


def mmio_cmdline(devices) -> str:
    """Firecracker-format ``virtio_mmio.device=4K@0x...:<irq>`` entries for ``devices``
    (``(size, base, irq)`` tuples), rendered by the cmdline part's encoder."""
    from ..cmdline import MmioDevice, encode_mmio

    return " ".join(encode_mmio(MmioDevice(size, base, irq, None)) for size, base, irq in devices)


def initrd_size(initrd) -> int | None:
    """The size of the ``initrd`` file (None without one); a missing file is exit 66."""
    if initrd is None:
        return None
    from ..fileio import open_input

    with open_input(initrd, "an initrd file") as f:
        return os.fstat(f.fileno()).st_size


def write_module(kernel: FcKernel, initrd, path) -> str:
    """The ``-initrd`` module: the kernel file itself, or (with an initrd) a copy of it with
    the initrd appended, written to ``path``."""
    if initrd is None:
        return os.fspath(kernel.path)
    from ..fileio import read_input

    with open(path, "wb") as f:
        f.write(kernel.data)
        f.write(read_input(initrd, "an initrd file"))
    return os.fspath(path)


LOADER_FILE = "fc-loader.elf"
MODULE_FILE = "fc-module.img"


def _prepare(spec, workdir: str, mmio_devices=()):
    """Check ``spec`` as the run would and return (kernel, command line, memory, initrd
    size, module path, loader path)."""
    from .pvh import guest_memory

    k = read_fc_kernel(spec.image)
    line = " ".join(p for p in (spec.line.strip(), mmio_cmdline(mmio_devices)) if p)
    check_fc_cmdline(line)
    mem = guest_memory(spec.memory)
    size = initrd_size(spec.initrd)
    module = spec.image if spec.initrd is None else os.path.join(workdir, MODULE_FILE)
    return k, line, mem, size, module, os.path.join(workdir, LOADER_FILE)


def command(spec, workdir: str) -> list[str]:
    """The ``qemu-fc`` backend's command for ``spec`` (:class:`~osvkit.run.spec.RunSpec`),
    after every check the run makes (so ``--dry-run`` prints no command that would fail)."""
    k, line, mem, size, module, loader = _prepare(spec, workdir)
    plan_loader(k, memory=mem, cpus=spec.cpus, protocol=spec.fc_protocol, initrd_size=size)
    return qemu_fc_argv(module, loader, machine=spec.machine, cmdline=line, memory=spec.memory,
                        cpus=spec.cpus, disk=spec.disk, accel=spec.accel) + list(spec.extra)


def run(spec, *, mmio_devices=(), loader_path=None):
    """Boot ``spec.image`` the way Firecracker would, inside QEMU; the RunResult carries the
    loader's plan as ``fc_plan``.  ``mmio_devices`` (``(size, base, irq)``) are appended to
    the command line in Firecracker's format; ``loader_path`` keeps the generated loader."""
    import tempfile

    from .qemu import run_qemu

    with tempfile.TemporaryDirectory(prefix="osvkit-fc-") as tmp:
        k, line, mem, size, module, lp = _prepare(spec, tmp, mmio_devices)
        elf, plan = build_loader(k, memory=mem, cpus=spec.cpus, protocol=spec.fc_protocol,
                                 initrd_size=size)
        lp = os.fspath(loader_path) if loader_path else lp
        with open(lp, "wb") as f:
            f.write(elf)
        if spec.initrd is not None:
            write_module(k, spec.initrd, module)
        argv = qemu_fc_argv(module, lp, machine=spec.machine, cmdline=line, memory=spec.memory,
                            cpus=spec.cpus, disk=spec.disk, accel=spec.accel) + list(spec.extra)
        result = run_qemu(argv, timeout=spec.timeout, expect=spec.expect,
                          console_path=spec.console_path, workdir=tmp)
    result.vmm = "qemu-fc"
    result.fc_plan = plan
    return result


def run_qemu_fc(kernel, *, machine: str = "pc", cmdline: str = "", memory="256M", cpus: int = 1,
                disk=None, mmio_devices=(), accel: str = "tcg", timeout: float = 60,
                expect: str | None = None, console_path=None, loader_path=None,
                protocol: str = "linux", initrd=None):
    """Boot ``kernel`` (any x86-64 vmlinux ELF or bzImage Firecracker's loader accepts) the
    way Firecracker would, inside QEMU; returns the runner's RunResult (with the plan attached
    as ``fc_plan``)."""
    from .spec import RunSpec

    spec = RunSpec(kernel, vmm="qemu-fc", machine=machine, cmdline=cmdline, memory=memory,
                   cpus=cpus, disk=disk, accel=accel, timeout=timeout, expect=expect,
                   console_path=console_path, fc_protocol=protocol, initrd=initrd)
    return run(spec, mmio_devices=mmio_devices, loader_path=loader_path)

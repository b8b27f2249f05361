"""A test-only boot loader for the probe kernel (NOT part of osvkit).

It stands in for osvkit's boot paths while testing the probe alone: SeaBIOS boots this raw
disk; sector 0 loads the next sectors (stage 2) to 0x7E00, which fills OSv's boot-info block
at 0x1000 the way boot16 does (command line, E820 records of 24 bytes at 0x2000, three TSC
stamps, boot-loader name "test-boot") and then enters the probe, which QEMU's generic loader
device placed at 0x200000 (``-device loader,file=probe.elf,addr=0x200000,force-raw=on``):

* ``pm32``: 32-bit flat protected mode, paging off, ``call *0x200800`` with EBX = 0x1000
  (exactly boot16's call);
* ``compat``: enables long mode with identity paging (Firecracker-like tables at 0x9000),
  then ``lretq`` to start32 through a 32-bit code selector (32-bit compatibility mode with
  paging on, like OSv's ``vmlinux_entry64``);
* ``elf64``: a Firecracker-style 64-bit entry: GDT at 0x500 (Firecracker's values), IDT at
  0x520, page tables at 0x9000/0xA000/0xB000 (PD flags 0x83), boot_params at 0x7000 (boot
  flag, "HdrS", cmdline pointer, e820 table), RSP = RBP = 0x8FF0, RSI = 0x7000,
  RFLAGS = 2, then ``jmp *0x200018`` (the ELF's e_entry).
"""

from __future__ import annotations

import struct

from osvkit.asm import assemble, byte_directive, far_jump16_to32

STAGE2 = 0x7E00
STAGE32 = 0x8000
STAGE64 = 0x8200
DATA = 0x8400
DATA_END = 0x8800
STAGE2_SECTORS = (DATA_END - STAGE2) // 512
GDT = (0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF, 0x00AF9A000000FFFF)
FC_GDT = (0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x008F8B000000FFFF)
LOADER_NAME = "test-boot"
BOOT_INFO = 0x1000
BP = 0x7000
BP_ACPI_RSDP = 0xE0000
BP_KERNEL_ALIGNMENT = 0x1000000


def _pad(code: bytes, size: int, what: str) -> bytes:
    if len(code) > size:
        raise AssertionError(f"{what} is {len(code)} bytes, more than {size}")
    return code + b"\xCC" * (size - len(code))


def _data_block(cmdline: bytes, mptable: bytes | None) -> tuple[bytes, dict[str, int]]:
    """The stage-2 data block at DATA and the addresses of its parts."""
    data = bytearray()
    gdt_addr = DATA
    data += b"".join(struct.pack("<Q", e) for e in GDT)
    gdt_desc = DATA + len(data)
    data += struct.pack("<HI", len(GDT) * 8 - 1, gdt_addr) + bytes(2)
    fc_gdt_src = DATA + len(data)
    data += b"".join(struct.pack("<Q", e) for e in FC_GDT)
    fc_gdt_desc = DATA + len(data)
    data += struct.pack("<HQ", 31, 0x500) + bytes(6)
    fc_idt_desc = DATA + len(data)
    data += struct.pack("<HQ", 7, 0x520) + bytes(6)
    name_addr = DATA + len(data)
    data += LOADER_NAME.encode() + b"\0"
    cmdline_addr = DATA + len(data)
    data += cmdline + b"\0"
    mptable_addr = DATA + len(data)
    data += mptable or b""
    if len(data) > DATA_END - DATA:
        raise AssertionError("test loader data area overflows")
    return bytes(data), dict(gdt_desc=gdt_desc, fc_gdt_src=fc_gdt_src, fc_gdt_desc=fc_gdt_desc,
                             fc_idt_desc=fc_idt_desc, name_addr=name_addr,
                             cmdline_addr=cmdline_addr, mptable_addr=mptable_addr)


def _sector0(partitions: bytes) -> bytes:
    """The boot sector: read stage 2 to 0x7E00 with int 0x13 and jump there."""
    sector0 = assemble(f"""
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw $0x6000, %sp
        sti
        movw $0x7c40, %si
        movb $0x42, %ah
        int $0x13
        jmp {STAGE2:#x}
    """, bits=16, base=0x7C00)
    dap = struct.pack("<BBHHHQ", 0x10, 0, STAGE2_SECTORS, STAGE2, 0, 1)
    s0 = bytearray(_pad(sector0, 0x40, "sector 0 code") + dap)
    s0 += bytes(0x1BE - len(s0))
    s0 += partitions + b"\x55\xAA"
    assert len(s0) == 512
    return bytes(s0)


def _stage16(mode: str, cmdline: bytes, a: dict[str, int]) -> bytes:
    """Real mode: fill the boot-info block (and boot_params for elf64), enter pm32."""
    gdt_desc, name_addr, cmdline_addr = a["gdt_desc"], a["name_addr"], a["cmdline_addr"]
    bi = BOOT_INFO
    fc = mode == "elf64"
    e820_base = BP + 0x2D0 if fc else 0x2000
    e820_step = 20 if fc else 24
    e820_skip = 0 if fc else 4
    s16 = f"""
        cld
        movw $0x2401, %ax
        int $0x15
        movw ${bi:#x}, %di
        xorl %eax, %eax
        movw $0x20, %cx
        rep stosl
        movw ${BP:#x}, %di
        movw $0x300, %cx
        rep stosl
        rdtsc
        movl %eax, {bi + 88:#x}
        movl %edx, {bi + 92:#x}
        movl ${cmdline_addr:#x}, {bi + 16:#x}
        movl $0x200, {bi:#x}
        movl ${name_addr:#x}, {bi + 64:#x}
        movl $0x2000, {bi + 48:#x}
        movw ${e820_base:#x}, %di
        xorl %ebx, %ebx
        xorw %si, %si
    e820_loop:
        movl $0xe820, %eax
        movl $0x534d4150, %edx
        movl $0x14, %ecx
        pushw %di
        addw ${e820_skip:#x}, %di
        int $0x15
        popw %di
        jc e820_done
        cmpl $0x534d4150, %eax
        jne e820_done
        {"" if fc else "movl %ecx, (%di)"}
        addw ${e820_step:#x}, %di
        incw %si
        testl %ebx, %ebx
        jnz e820_loop
    e820_done:
        movw %di, %ax
        subw $0x2000, %ax
        movzwl %ax, %eax
        movl %eax, {bi + 44:#x}
        movw %si, %ax
        movb %al, {BP + 0x1E8:#x}
        movw $0xaa55, {BP + 0x1FE:#x}
        movl $0x53726448, {BP + 0x202:#x}
        movb $0xff, {BP + 0x210:#x}
        movl ${cmdline_addr:#x}, {BP + 0x228:#x}
        movl ${BP_KERNEL_ALIGNMENT:#x}, {BP + 0x230:#x}
        movl ${len(cmdline) + 1:#x}, {BP + 0x238:#x}
        movl ${BP_ACPI_RSDP:#x}, {BP + 0x70:#x}
        rdtsc
        movl %eax, {bi + 96:#x}
        movl %edx, {bi + 100:#x}
        rdtsc
        movl %eax, {bi + 104:#x}
        movl %edx, {bi + 108:#x}
        cli
        lgdtl {gdt_desc:#x}
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        {byte_directive(far_jump16_to32(0x08, STAGE32))}
    """
    if fc:
        # the e820 records went to boot_params; the boot-info block is the probe's job
        s16 = s16.replace(f"movl %eax, {bi + 44:#x}", "nop")
    stage16 = assemble(s16, bits=16, base=STAGE2)
    return stage16


def _stage32(mode: str, mptable: bytes | None, a: dict[str, int]) -> bytes:
    """Protected mode: copy the MP table, then call start32 or switch to long mode."""
    mptable_addr = a["mptable_addr"]
    bi = BOOT_INFO
    s32 = """
        movl $0x10, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %fs
        movl %eax, %gs
        movl %eax, %ss
        movl $0x7c00, %esp
    """
    if mptable:
        s32 += f"""
        movl ${mptable_addr:#x}, %esi
        movl $0x9fc00, %edi
        movl ${len(mptable):#x}, %ecx
        rep movsb
        """
    if mode == "pm32":
        s32 += f"""
        movl ${bi:#x}, %ebx
        call *0x200800
    stop32:
        hlt
        jmp stop32
        """
    else:
        s32 += f"""
        movl $0x9000, %edi
        xorl %eax, %eax
        movl $0xc00, %ecx
        rep stosl
        movl $0xa003, 0x9000
        movl $0xb003, 0xa000
        movl $0xb000, %edi
        movl $0x83, %eax
        movl $0x200, %ecx
    pd_loop:
        movl %eax, (%edi)
        addl $0x200000, %eax
        addl $8, %edi
        decl %ecx
        jnz pd_loop
        movl $0x20, %eax
        movl %eax, %cr4
        movl $0x9000, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000000, %eax
        movl %eax, %cr0
        {byte_directive(bytes([0xEA]) + struct.pack("<IH", STAGE64, 0x18))}
        """
    stage32 = assemble(s32, bits=32, base=STAGE32)
    return stage32


def _stage64(mode: str, a: dict[str, int]) -> bytes:
    """Long mode: enter start32 in compatibility mode, or the ELF entry like Firecracker."""
    fc_gdt_src, fc_gdt_desc, fc_idt_desc = a["fc_gdt_src"], a["fc_gdt_desc"], a["fc_idt_desc"]
    bi = BOOT_INFO
    if mode == "compat":
        s64 = f"""
        movl ${bi:#x}, %ebx
        movq $0x200800, %r11
        movl (%r11), %eax
        pushq $0x08
        pushq %rax
        lretq
        """
    elif mode == "elf64":
        s64 = f"""
        movq ${fc_gdt_src:#x}, %rsi
        movq $0x500, %rdi
        movl $0x20, %ecx
        rep movsb
        movq $0x520, %rdi
        xorl %eax, %eax
        movl $8, %ecx
        rep stosb
        movq ${fc_gdt_desc:#x}, %r11
        lgdt (%r11)
        movq ${fc_idt_desc:#x}, %r11
        lidt (%r11)
        movl $0x10, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        pushq $0x08
        pushq $fc_cs
        lretq
    fc_cs:
        movq $0x8ff0, %rsp
        movq %rsp, %rbp
        movq ${BP:#x}, %rsi
        xorl %eax, %eax
        xorl %ebx, %ebx
        xorl %ecx, %ecx
        xorl %edx, %edx
        xorl %edi, %edi
        pushq $2
        popfq
        movq $0x200018, %r11
        jmpq *(%r11)
        """
    else:
        s64 = "hlt"
    stage64 = assemble(s64, bits=64, base=STAGE64)
    return stage64


def build_loader_disk(mode: str = "pm32", cmdline: bytes = b"", *,
                      partitions: bytes = bytes(64), size: int = 64 * 1024,
                      mptable: bytes | None = None) -> bytes:
    """``mptable``: bytes copied to 0x9FC00 (where Firecracker puts its MP table and OSv
    searches first) once the BIOS is no longer needed."""
    if mode not in ("pm32", "compat", "elf64"):
        raise ValueError(mode)
    data, a = _data_block(cmdline, mptable)
    s0 = _sector0(partitions)
    stage16 = _stage16(mode, cmdline, a)
    stage32 = _stage32(mode, mptable, a)
    stage64 = _stage64(mode, a)
    stage2 = (_pad(stage16, STAGE32 - STAGE2, "stage 2 (16-bit)")
              + _pad(stage32, STAGE64 - STAGE32, "stage 2 (32-bit)")
              + _pad(stage64, DATA - STAGE64, "stage 2 (64-bit)")
              + bytes(data) + bytes(DATA_END - DATA - len(data)))
    disk = bytes(s0) + stage2
    return disk + bytes(size - len(disk))


def qemu_argv(qemu: str, disk: str, probe: str, serial: str, bootdone: str, *, cpus: int = 1,
              memory: str = "128M") -> list[str]:
    return [qemu, "-accel", "tcg", "-machine", "q35" if False else "pc", "-m", memory,
            "-smp", str(cpus), "-display", "none", "-nodefaults", "-no-reboot",
            "-serial", f"file:{serial}",
            "-chardev", f"file,id=bootdone,path={bootdone}",
            "-device", "isa-debugcon,iobase=0x3f0,chardev=bootdone",
            "-drive", f"file={disk},format=raw,if=ide",
            "-device", f"loader,file={probe},addr=0x200000,force-raw=on"]

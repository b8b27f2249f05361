"""Pure builders that reproduce the boot data Firecracker writes into guest memory.

The GDT, the page tables, the PVH start_info, the zero page and e820 map (in Firecracker's
HEAD order) and the MP table.  Every function returns bytes or plain values and does
no I/O; addresses come from :mod:`osvkit.layout`.  osvkit uses these to emulate Firecracker in
QEMU (the ``qemu-fc`` path) and to check its own boot stubs against what Firecracker provides.
"""

from __future__ import annotations

from .. import layout
from ..errors import LayoutError
from ..structs import base as schema
from ..structs import bootparams as bootparams_s
from ..structs import mptable as mptable_s
from ..structs.x86 import PAGE_TABLE_ENTRIES, PageTable, gdt
from . import bootparams, mptable, pvh

E820_RAM = bootparams_s.E820_RAM
E820_RESERVED = bootparams_s.E820_RESERVED

FC_MAX_SUPPORTED_CPUS = 254
"""mptable.rs MAX_SUPPORTED_CPUS: xAPIC ids 0-254 minus the I/O APIC."""
FC_MP_APIC_VERSION = 0x14
FC_MP_CPU_SIGNATURE = 0x600
FC_MP_CPU_FEATURES = 0x201
"""CPUID.1 EDX bits APIC (9) | FPU (0)."""
FC_MP_OEM = b"FC      "
FC_MP_PRODUCTID = b"000000000000"
FC_MP_IRQ_COUNT = 24
FC_LOADER_TYPE = 0xFF
FC_KERNEL_ALIGNMENT = 0x0100_0000


def firecracker_e820(mem_size: int) -> list[tuple[int, int, int]]:
    """The e820 map Firecracker (HEAD, >= v1.14) writes for ``mem_size`` bytes of RAM:
    ``[(addr, size, type), ...]`` in Firecracker's order."""
    if mem_size <= layout.FC_HIMEM_START:
        raise LayoutError(f"guest memory of {mem_size:#x} bytes",
                          expected=f"more than {layout.FC_HIMEM_START:#x}")
    low = min(mem_size, layout.FC_MMIO32_START)                 # DRAM below the 32-bit gap
    rest = mem_size - low
    entries = [
        (0, layout.FC_SYSTEM_MEM_START, E820_RAM),
        (layout.FC_SYSTEM_MEM_START, layout.FC_SYSTEM_MEM_SIZE, E820_RESERVED),
        (layout.FC_PCI_MMCONFIG_START, layout.FC_PCI_MMCONFIG_SIZE, E820_RESERVED),
        (layout.FC_HIMEM_START, low - layout.FC_HIMEM_START, E820_RAM),
    ]
    if rest:
        gap64 = layout.FC_MMIO64_START - layout.FC_RAM_HIGH_START
        entries.append((layout.FC_RAM_HIGH_START, min(rest, gap64), E820_RAM))
        if rest > gap64:
            entries.append((layout.FC_PAST_MMIO64_START, rest - gap64, E820_RAM))
    return entries


def firecracker_mptable(ncpus: int, address: int = layout.FC_MPTABLE_ADDR) -> bytes:
    """Firecracker's MP table for ``ncpus`` vCPUs, floating pointer first: 284 + 20 n bytes,
    to be placed at ``address`` (0x9FC00)."""
    if not 1 <= ncpus <= FC_MAX_SUPPORTED_CPUS:
        raise LayoutError(f"{ncpus} vCPUs", expected=f"1 to {FC_MAX_SUPPORTED_CPUS}")
    ioapic_id = ncpus + 1
    e = mptable.build_entry
    entries = [
        e("processor", apicid=cpu, apicver=FC_MP_APIC_VERSION,
          cpuflag=mptable.CPU_ENABLED | (mptable.CPU_BOOTPROCESSOR if cpu == 0 else 0),
          cpufeature=FC_MP_CPU_SIGNATURE, featureflag=FC_MP_CPU_FEATURES)
        for cpu in range(ncpus)
    ]
    entries.append(e("bus", busid=0, bustype=b"ISA   "))
    entries.append(e("ioapic", apicid=ioapic_id, apicver=FC_MP_APIC_VERSION,
                     flags=mptable_s.MPC_APIC_USABLE, apicaddr=layout.FC_IOAPIC_ADDR))
    entries += [e("intsrc", irqtype=mptable_s.MP_IRQTYPE_INT, irqflag=0, srcbus=0, srcbusirq=i,
                  dstapic=ioapic_id, dstirq=i) for i in range(FC_MP_IRQ_COUNT)]
    entries.append(e("lintsrc", irqtype=mptable_s.MP_IRQTYPE_EXTINT, destapic=0, destapiclint=0))
    entries.append(e("lintsrc", irqtype=mptable_s.MP_IRQTYPE_NMI, destapic=0xFF, destapiclint=1))
    # Firecracker's oemcount counts the floating pointer as well: one more than the entries.
    return mptable.build_mp_table(address, entries, oem=FC_MP_OEM, productid=FC_MP_PRODUCTID,
                                  lapic=layout.FC_APIC_ADDR, oemcount=len(entries) + 1)


def firecracker_boot_params(cmdline_len: int, e820, cmd_line_ptr: int = layout.FC_CMDLINE_ADDR,
                            *, ramdisk: tuple[int, int] | None = None) -> bytes:
    """The 4096-byte zero page Firecracker writes for an ELF kernel: ``cmdline_len`` is the
    command line's length without the NUL."""
    if not 0 <= cmdline_len < layout.FC_CMDLINE_MAX_SIZE:
        raise LayoutError(f"command line of {cmdline_len} bytes",
                          expected=f"at most {layout.FC_CMDLINE_MAX_SIZE - 1}")
    hdr = dict(type_of_loader=FC_LOADER_TYPE, cmd_line_ptr=cmd_line_ptr,
               cmdline_size=cmdline_len + 1, kernel_alignment=FC_KERNEL_ALIGNMENT)
    if ramdisk:
        hdr.update(ramdisk_image=ramdisk[0], ramdisk_size=ramdisk[1])
    return bootparams.build_boot_params(hdr=hdr, e820=e820,
                                        acpi_rsdp_addr=layout.FC_RSDP_ADDR)


def firecracker_pvh_start_info(memmap_entries: int,
                               cmdline_paddr: int = layout.FC_CMDLINE_ADDR, *,
                               nr_modules: int = 0) -> bytes:
    """Firecracker's 56-byte ``hvm_start_info``: version 1, flags 0,
    memmap at 0x7000, ``modlist_paddr`` 0x6040 only with modules, ``rsdp_paddr`` 0."""
    return pvh.build_start_info(
        cmdline_paddr=cmdline_paddr, memmap_paddr=layout.FC_PVH_MEMMAP_ADDR,
        memmap_entries=memmap_entries, nr_modules=nr_modules,
        modlist_paddr=layout.FC_PVH_MODLIST_ADDR if nr_modules else 0)


def firecracker_pvh_memmap(e820) -> bytes:
    """The PVH memmap table (24-byte entries) for an e820 list."""
    return pvh.build_memmap(e820)


def gdt_entry(flags: int, base: int, limit: int) -> int:
    """A 64-bit segment descriptor from Firecracker's (flags, base, limit) triple: ``flags``
    holds the access byte in bits 0-7 and the G/DB/L/AVL nibble in bits 12-15."""
    return (((base & 0xFF00_0000) << (56 - 24))
            | ((flags & 0x0000_F0FF) << 40)
            | ((limit & 0x000F_0000) << (48 - 16))
            | ((base & 0x00FF_FFFF) << 16)
            | (limit & 0x0000_FFFF))


FC_GDT_FLAGS = {
    "linux": [(0, 0, 0), (0xA09B, 0, 0xFFFFF), (0xC093, 0, 0xFFFFF), (0x808B, 0, 0xFFFFF)],
    "pvh": [(0, 0, 0), (0xC09B, 0, 0xFFFF_FFFF), (0xC093, 0, 0xFFFF_FFFF), (0x008B, 0, 0x67)],
}
"""(flags, base, limit) of the NULL, CODE (0x08), DATA (0x10) and TSS (0x18) descriptors."""


def firecracker_gdt(protocol: str = "linux") -> bytes:
    """The 4-entry GDT Firecracker writes at 0x500 for ``protocol`` "linux" or "pvh"."""
    if protocol not in FC_GDT_FLAGS:
        raise ValueError(f"protocol must be 'linux' or 'pvh', not {protocol!r}")
    entries = [gdt_entry(*e) for e in FC_GDT_FLAGS[protocol]]
    return schema.build(gdt(len(entries)), entries, what="GDT")


PAGE_PRESENT_RW = 0x3
PAGE_PRESENT_RW_PS = 0x83


def firecracker_page_tables() -> bytes:
    """The 3 pages at 0x9000-0xC000: PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = 2 MiB page i
    (identity map of the first 1 GiB).  Every other entry is 0."""
    def table(entries: list[int]) -> bytes:
        return schema.build(PageTable, entries + [0] * (PAGE_TABLE_ENTRIES - len(entries)),
                            what="page table")
    pd = [(i << 21) + PAGE_PRESENT_RW_PS for i in range(PAGE_TABLE_ENTRIES)]
    return (table([layout.FC_PDPTE_ADDR | PAGE_PRESENT_RW])
            + table([layout.FC_PDE_ADDR | PAGE_PRESENT_RW]) + table(pd))

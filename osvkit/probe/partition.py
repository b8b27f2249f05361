"""The partition-table report: the MBR the BIOS left at 0x7C00, if it is one."""

from __future__ import annotations

from .layout import MBR_PARTITIONS_ADDR, MBR_REPORT_SIZE, MBR_SIGNATURE, MBR_SIGNATURE_ADDR
from .program import Program, at


def section(p: Program, done: str) -> str:
    """start64: ``probe.mbr`` lines (64-byte table + ``55aa``) when 0x7DFE holds 55 AA
    (label ``s64_mbr``); ends at ``done``."""
    return f"""
    s64_mbr:
        {at(MBR_SIGNATURE_ADDR)}
        cmpw ${MBR_SIGNATURE:#x}, (%r11)
        jne s64_nombr
        movq ${p.string("probe.mbr "):#x}, %rsi
        movq ${MBR_PARTITIONS_ADDR:#x}, %rdi
        movl ${MBR_REPORT_SIZE:#x}, %ecx
        call {p.sym['hexlines']:#x}
        jmp {done}
    s64_nombr:
        {p.puts("probe.mbr.none")}
        {p.newline}
    """

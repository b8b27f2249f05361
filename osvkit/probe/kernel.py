"""Generate the conformance kernel ("probe"): a tiny ELF64 that keeps OSv's boot contract.

The probe stands in for OSv's ``loader-stripped.elf`` wherever osvkit needs a kernel whose
behaviour it fully knows.  It is entered exactly like OSv (``start32`` through the slot at
+0x800, or the ELF entry), switches to long mode the way OSv's ``boot.S`` does, and prints a
line-oriented report of everything the boot path handed it on COM1 (see
:mod:`osvkit.probe.report` for the format), then signals boot-done and powers off like OSv.

File and memory layout (file offset X is physical 0x200000 + X and virtual 0x40200000 + X):

========  =================================================================================
offset    content
========  =================================================================================
0x000     ELF64 header, then one program header (the only PT_LOAD, from file offset 0)
0x800     u64: physical address of ``start32`` (OSv's ``.start32_address`` slot)
0x808     probe info block (:data:`INFO_OFFSET`): magic ``OSVKPROB``, u32 version,
          u32 image length (PT_LOAD p_filesz), u32 header checksum, u32 body checksum,
          u32 flags (bit 0: built with ``entry_report``)
0x840     data: the GDT (OSv's selectors 0x08/0x10/0x18), its descriptor, a zero IDT
          descriptor and the report's key strings
0x1000    code: the 64-bit helper routines, ``start64``, the optional ELF entry routine,
          then ``start32`` (each routine 16-byte aligned)
...       payload (only with ``size``): code-like filler that compresses like kernel code
filesz    end of the PT_LOAD file image (a multiple of 16)
          bss (not in the file): ``ident_pt_l4``, its l3 and l2 tables, a save area and the
          stack, from the next 4 KiB boundary
          after the PT_LOAD: .symtab, .strtab, .shstrtab and the section headers
========  =================================================================================

Symbols in ``.symtab`` carry *virtual* addresses (0x40200000 + offset), as in OSv's
``loader.elf``; the code runs at the physical addresses (virtual - 0x40000000).

``e_entry`` is the physical address of ``start32`` (OSv kernels without a vmlinux entry have
only start32; a Firecracker-style loader must not jump there in 64-bit mode) or, with
``entry_report=True``, the physical address of a 64-bit routine that first records the
CPU and boot_params state a Linux-64-bit-protocol loader left, prints it, then continues like
OSv's ``vmlinux_entry64`` (copies the command line and e820 map into the boot-info block at
0x1000/0x2000, names the loader ``probe-elf-entry``, loads its GDT and ``lret``\\ s to
``start32`` in 32-bit compatibility mode with EBX = 0x1000).

``start32`` (32-bit code, EBX = boot-info block, any flat CS): records CR0/ESP/CS, loads the
probe's GDT (0x08 64-bit code ``00af9b000000ffff``, 0x10 data ``00cf93000000ffff``, 0x18 32-bit
code ``00cf9b000000ffff``, as OSv's ``boot.S``), reloads CS with 0x18; if paging is on (it was
entered in compatibility mode, like OSv's ``vmlinux_entry64`` rejoins it) it clears CR0.PG
(the code is identity-mapped below 1 GiB) and EFER.LME; then it builds OSv's page tables in
bss (``ident_pt_l4[0]`` -> l3 | 0x67, l3[0] and l3[1] -> l2 | 0x67, l2[i] = i << 21 | 0x1E7),
sets CR4 = 0x7B8, CR3 = ``ident_pt_l4``, EFER = 0x900, CR0 = 0x80010003 and far-jumps
(``ea`` + offset + selector bytes) to ``start64`` through selector 0x08.  ESI tells start64
which entry ran (``MARK_START32`` / ``MARK_ELF_ENTRY``; anything else means start64 was
entered directly).

Generated code uses hexadecimal literals only and no absolute memory operands in 64-bit code
(see :func:`hexify` and :func:`absolute64` for the two Keystone 0.9.2 bugs), and no SSE.

Integrity: two Adler-32 checksums (:func:`checksum`, the same value as ``zlib.adler32``) are
embedded at build time: the *header* sum over file bytes [0, 0x800) and the *body* sum over
[0x800, p_filesz) with both sum fields (8 bytes at 0x818) read as zero.  The
probe recomputes both at boot; the report says ``image ok`` or ``image corrupt`` for the body
and ``header ok`` or ``header changed`` for the ELF header area (which loaders' patchers,
e.g. an ``e_entry`` rewrite, legitimately change).
"""

from __future__ import annotations

import functools
import random
import re
import struct
import zlib
from dataclasses import asdict, dataclass

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .. import layout
from ..asm import assemble, byte_directive, far_jump32
from ..errors import UsageError

# ----------------------------------------------------------------------------------------
# Fixed layout
# ----------------------------------------------------------------------------------------
BASE = layout.KERNEL_BASE_ADDR            # 0x200000: physical address of file offset 0
VM_BASE = layout.KERNEL_VM_BASE           # 0x40200000: virtual address of file offset 0
VM_SHIFT = layout.KERNEL_VM_SHIFT
SLOT_OFFSET = layout.START32_SLOT_OFFSET  # 0x800
INFO_OFFSET = 0x808
INFO_MAGIC = b"OSVKPROB"
INFO_VERSION = 1
INFO_SUMS_OFFSET = INFO_OFFSET + 0x10     # header sum, then body sum (8 bytes, read as 0)
DATA_OFFSET = 0x840
CODE_OFFSET = layout.KERNEL_TEXT_OFFSET   # 0x1000
FLAG_ENTRY_REPORT = 1

REPORT_VERSION = 1
LOADER_NAME_FLAG = 0x200                   # multiboot flags bit 9: boot_loader_name valid
ELF_ENTRY_LOADER_NAME = "probe-elf-entry"
BOOT_INFO_ADDR = layout.BOOTINFO_ADDR      # 0x1000
E820_ADDR = layout.E820_MAP_ADDR           # 0x2000

# Markers start32 leaves in ESI for start64 ("which entry was used").
MARK_START32 = 0x32335453                  # "ST32"
MARK_ELF_ENTRY = 0x464C4545                # "EELF"

GDT = (0x0000000000000000, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x00CF9B000000FFFF)
SEL_CODE64, SEL_DATA, SEL_CODE32 = 0x08, 0x10, 0x18

BOOT_CR0 = 0x80010003                      # PE | MP | WP | PG
BOOT_CR4 = 0x7B8                           # DE | PSE | PAE | PGE | PCE | OSFXSR | OSXMMEXCPT
BOOT_EFER = 0x900                          # LME | NXE
MSR_EFER = 0xC0000080
PT_TABLE_FLAGS = 0x67
PT_2M_FLAGS = 0x1E7

# bss, relative to the 4 KiB boundary after the file image
BSS_L4, BSS_L3, BSS_L2 = 0x0000, 0x1000, 0x2000
BSS_SAVE = 0x3000                          # 4 KiB: the ELF-entry state dump and start32 notes
BSS_STACK_TOP = 0x8000
BSS_SIZE = 0x8000

# save area layout (offsets into BSS_SAVE)
S32_CR0, S32_ESP, S32_CS = 0x800, 0x808, 0x810

MIN_SIZE_ALIGN = 16
MAX_SIZE = 512 * layout.MiB


# ----------------------------------------------------------------------------------------
# ELF64 structures (the spec's field names)
# ----------------------------------------------------------------------------------------
Elf64_Ehdr = Struct(
    "e_ident_magic" / Const(b"\x7fELF"),
    "e_ident_class" / Const(2, Int8ul),        # ELFCLASS64
    "e_ident_data" / Const(1, Int8ul),         # ELFDATA2LSB
    "e_ident_version" / Const(1, Int8ul),
    "e_ident_osabi" / Int8ul,
    "e_ident_pad" / Bytes(8),
    "e_type" / Int16ul,
    "e_machine" / Int16ul,
    "e_version" / Int32ul,
    "e_entry" / Int64ul,
    "e_phoff" / Int64ul,
    "e_shoff" / Int64ul,
    "e_flags" / Int32ul,
    "e_ehsize" / Int16ul,
    "e_phentsize" / Int16ul,
    "e_phnum" / Int16ul,
    "e_shentsize" / Int16ul,
    "e_shnum" / Int16ul,
    "e_shstrndx" / Int16ul,
)
Elf64_Phdr = Struct(
    "p_type" / Int32ul,
    "p_flags" / Int32ul,
    "p_offset" / Int64ul,
    "p_vaddr" / Int64ul,
    "p_paddr" / Int64ul,
    "p_filesz" / Int64ul,
    "p_memsz" / Int64ul,
    "p_align" / Int64ul,
)
Elf64_Shdr = Struct(
    "sh_name" / Int32ul,
    "sh_type" / Int32ul,
    "sh_flags" / Int64ul,
    "sh_addr" / Int64ul,
    "sh_offset" / Int64ul,
    "sh_size" / Int64ul,
    "sh_link" / Int32ul,
    "sh_info" / Int32ul,
    "sh_addralign" / Int64ul,
    "sh_entsize" / Int64ul,
)
Elf64_Sym = Struct(
    "st_name" / Int32ul,
    "st_info" / Int8ul,
    "st_other" / Int8ul,
    "st_shndx" / Int16ul,
    "st_value" / Int64ul,
    "st_size" / Int64ul,
)
ProbeInfo = Struct(
    "magic" / Const(INFO_MAGIC),      # +0x00
    "version" / Int32ul,              # +0x08
    "image_len" / Int32ul,            # +0x0C: PT_LOAD p_filesz
    "header_sum" / Int32ul,           # +0x10: checksum of [0, 0x800)
    "body_sum" / Int32ul,             # +0x14: checksum of [0x800, image_len), sums read as 0
    "flags" / Int32ul,                # +0x18
)
EHDR_SIZE, PHDR_SIZE, SHDR_SIZE, SYM_SIZE = 64, 56, 64, 24
ET_EXEC, EM_X86_64, EV_CURRENT = 2, 62, 1
PT_LOAD, PF_RWX = 1, 7
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
STB_GLOBAL, STT_OBJECT, STT_FUNC = 1, 1, 2


def checksum(data: bytes, value: int = 1) -> int:
    """The probe's image checksum: Adler-32 (as ``zlib.adler32``), continuing from ``value``."""
    return zlib.adler32(data, value)


# ----------------------------------------------------------------------------------------
# Data area: GDT, descriptors, report strings
# ----------------------------------------------------------------------------------------
class _Data:
    def __init__(self, offset: int, limit: int):
        self.start = offset
        self.limit = limit
        self.buf = bytearray()
        self.addr: dict[str, int] = {}

    def add(self, name: str, blob: bytes, align: int = 1) -> int:
        while (self.start + len(self.buf)) % align:
            self.buf.append(0)
        off = self.start + len(self.buf)
        self.buf += blob
        if off + len(blob) > self.limit:
            raise AssertionError(f"probe data area overflows at {name}")
        self.addr[name] = BASE + off
        return BASE + off

    def string(self, text: str) -> int:
        key = "str:" + text
        if key not in self.addr:
            self.add(key, text.encode() + b"\0")
        return self.addr[key]


# Entry-state records: (report key, save-area offset, hex digits)
_STATE_REGS = [("rip", 0x48, 16), ("rsp", 0x38, 16), ("rbp", 0x30, 16), ("rsi", 0x20, 16),
               ("rdi", 0x28, 16), ("rbx", 0x08, 16), ("rax", 0x00, 16), ("rcx", 0x10, 16),
               ("rdx", 0x18, 16), ("rflags", 0x40, 16), ("cr0", 0x50, 16), ("cr3", 0x58, 16),
               ("cr4", 0x60, 16), ("efer", 0x68, 16),
               ("cs", 0x70, 4), ("ds", 0x72, 4), ("es", 0x74, 4), ("ss", 0x76, 4),
               ("fs", 0x78, 4), ("gs", 0x7A, 4), ("tr", 0x7C, 4)]
_SAVE_GDTR, _SAVE_IDTR = 0x80, 0x90          # 10 bytes each: limit u16, base u64
_SAVE_GDT = 0xA0                             # 4 x u64
_SAVE_PT = 0xC0                              # pml4[0], pdpt[0], pd[0], pd[1], pd[511]
_SAVE_BP = 0x100                             # boot_params fields (below)
_BP_FIELDS = [  # (key, boot_params offset, size, save offset, digits)
    ("boot_flag", 0x1FE, 2, 0x100, 4),
    ("header", 0x202, 4, 0x108, 8),
    ("type_of_loader", 0x210, 1, 0x110, 2),
    ("cmd_line_ptr", 0x228, 4, 0x118, 8),
    ("cmdline_size", 0x238, 4, 0x120, 8),
    ("kernel_alignment", 0x230, 4, 0x128, 8),
    ("e820_entries", 0x1E8, 1, 0x130, 2),
    ("acpi_rsdp_addr", 0x070, 8, 0x138, 16),
]
BP_E820_OFFSET = 0x2D0
BP_E820_MAX = 128


class _Builder:
    """Lays out data and code for one probe; ``filesz`` fixes the bss addresses."""

    def __init__(self, filesz: int, entry_report: bool):
        self.entry_report = entry_report
        self.bss = BASE + _align(filesz, 0x1000)
        self.d = _Data(DATA_OFFSET, CODE_OFFSET)
        d = self.d
        d.add("gdt", b"".join(struct.pack("<Q", e) for e in GDT), align=16)
        d.add("gdt_desc", struct.pack("<HQ", len(GDT) * 8 - 1, d.addr["gdt"]), align=16)
        d.add("idt_zero", bytes(10), align=16)
        self.sym: dict[str, int] = {}
        self.code = bytearray()

    # -- helpers for assembly text -------------------------------------------------
    def s(self, text: str) -> int:
        return self.d.string(text)

    @property
    def save(self) -> int:
        return self.bss + BSS_SAVE

    def _emit(self, name: str, text: str, bits: int) -> int:
        while len(self.code) % 16:
            self.code.append(0xCC)
        addr = BASE + CODE_OFFSET + len(self.code)
        text = hexify(text)
        if bits == 64:
            text = absolute64(text)
        self.code += assemble(text, bits=bits, base=addr)
        self.sym[name] = addr
        return addr

    def call_puts(self, text: str) -> str:
        return f"movq ${self.s(text):#x}, %rsi\ncall {self.sym['puts']:#x}\n"

    def call_hex(self, digits: int) -> str:
        return f"movl ${digits}, %ecx\ncall {self.sym['puthex']:#x}\n"

    # -- the routines ----------------------------------------------------------------
    def build(self) -> None:
        com = layout.COM1_PORT
        self._emit("putc", f"""
            pushq %rdx
            pushq %rcx
            pushq %rax
            movl $200000, %ecx
        putc_wait:
            movw ${com + 5:#x}, %dx
            inb %dx, %al
            testb $0x20, %al
            jnz putc_ready
            decl %ecx
            jnz putc_wait
        putc_ready:
            popq %rax
            movw ${com:#x}, %dx
            outb %al, %dx
            popq %rcx
            popq %rdx
            ret
        """, 64)
        putc = self.sym["putc"]
        self._emit("puts", f"""
            pushq %rsi
            pushq %rax
        puts_loop:
            movb (%rsi), %al
            testb %al, %al
            jz puts_done
            call {putc:#x}
            incq %rsi
            jmp puts_loop
        puts_done:
            popq %rax
            popq %rsi
            ret
        """, 64)
        # puthex: RAX value, ECX digits (1..16), most significant digit first
        self._emit("puthex", f"""
            pushq %rax
            pushq %rcx
            pushq %rdx
            pushq %rbx
            movq %rax, %rdx
            movl %ecx, %ebx
            movl $16, %ecx
            subl %ebx, %ecx
            shll $2, %ecx
            shlq %cl, %rdx
        puthex_loop:
            rolq $4, %rdx
            movl %edx, %eax
            andl $15, %eax
            cmpb $10, %al
            jb puthex_digit
            addb $0x27, %al
        puthex_digit:
            addb $0x30, %al
            call {putc:#x}
            decl %ebx
            jnz puthex_loop
            popq %rbx
            popq %rdx
            popq %rcx
            popq %rax
            ret
        """, 64)
        puthex = self.sym["puthex"]
        self._emit("newline", f"""
            pushq %rax
            movb $0x0a, %al
            call {putc:#x}
            popq %rax
            ret
        """, 64)
        newline = self.sym["newline"]
        # hexdump: RSI address, RCX byte count; two lowercase digits per byte
        self._emit("hexdump", f"""
            pushq %rsi
            pushq %rcx
            pushq %rax
            pushq %rdx
            movq %rcx, %rdx
        hexdump_loop:
            testq %rdx, %rdx
            jz hexdump_done
            movzbl (%rsi), %eax
            movl $2, %ecx
            call {puthex:#x}
            incq %rsi
            decq %rdx
            jmp hexdump_loop
        hexdump_done:
            popq %rdx
            popq %rax
            popq %rcx
            popq %rsi
            ret
        """, 64)
        hexdump = self.sym["hexdump"]
        # strnlen: RSI address, RCX limit -> RAX length
        self._emit("strnlen", """
            xorl %eax, %eax
        strnlen_loop:
            cmpq %rcx, %rax
            jae strnlen_done
            cmpb $0, (%rsi,%rax)
            je strnlen_done
            incq %rax
            jmp strnlen_loop
        strnlen_done:
            ret
        """, 64)
        strnlen = self.sym["strnlen"]
        # putesc: RSI address, RCX length; printable ASCII except backslash as is,
        # backslash as \\, everything else as \xNN
        self._emit("putesc", f"""
            pushq %rsi
            pushq %rcx
            pushq %rax
            pushq %rdx
            movq %rcx, %rdx
        putesc_loop:
            testq %rdx, %rdx
            jz putesc_done
            movzbl (%rsi), %eax
            cmpb $0x5c, %al
            je putesc_backslash
            cmpb $0x20, %al
            jb putesc_hex
            cmpb $0x7e, %al
            ja putesc_hex
            call {putc:#x}
            jmp putesc_next
        putesc_backslash:
            call {putc:#x}
            call {putc:#x}
            jmp putesc_next
        putesc_hex:
            pushq %rax
            movb $0x5c, %al
            call {putc:#x}
            movb $0x78, %al
            call {putc:#x}
            popq %rax
            movl $2, %ecx
            call {puthex:#x}
        putesc_next:
            incq %rsi
            decq %rdx
            jmp putesc_loop
        putesc_done:
            popq %rdx
            popq %rax
            popq %rcx
            popq %rsi
            ret
        """, 64)
        putesc = self.sym["putesc"]
        # hexlines: RSI key string, RDI address, RCX length: "<key><hex of 32 bytes>\n" ...
        self._emit("hexlines", f"""
            pushq %rdi
            pushq %rcx
            pushq %rsi
            pushq %rdx
            movq %rsi, %rdx
        hexlines_loop:
            testq %rcx, %rcx
            jz hexlines_done
            movq %rdx, %rsi
            call {self.sym['puts']:#x}
            pushq %rcx
            cmpq $32, %rcx
            jbe hexlines_last
            movl $32, %ecx
        hexlines_last:
            movq %rdi, %rsi
            call {hexdump:#x}
            addq %rcx, %rdi
            movq %rcx, %rsi
            popq %rcx
            subq %rsi, %rcx
            call {newline:#x}
            jmp hexlines_loop
        hexlines_done:
            popq %rdx
            popq %rsi
            popq %rcx
            popq %rdi
            ret
        """, 64)
        hexlines = self.sym["hexlines"]
        # adler32: RSI start, RCX byte count, EAX running Adler-32 (b << 16 | a) -> EAX
        self._emit("csum", """
            pushq %rsi
            pushq %rcx
            pushq %rdx
            pushq %rbx
            pushq %r8
            pushq %r9
            movl %eax, %r8d
            andl $0xffff, %r8d
            movl %eax, %r9d
            shrl $16, %r9d
        adler_outer:
            testq %rcx, %rcx
            jz adler_done
            movq %rcx, %rbx
            cmpq $5552, %rbx
            jbe adler_chunk
            movl $5552, %ebx
        adler_chunk:
            subq %rbx, %rcx
        adler_inner:
            movzbl (%rsi), %eax
            addl %eax, %r8d
            addl %r8d, %r9d
            incq %rsi
            decq %rbx
            jnz adler_inner
            movl $65521, %ebx
            movl %r8d, %eax
            xorl %edx, %edx
            divl %ebx
            movl %edx, %r8d
            movl %r9d, %eax
            xorl %edx, %edx
            divl %ebx
            movl %edx, %r9d
            jmp adler_outer
        adler_done:
            movl %r9d, %eax
            shll $16, %eax
            orl %r8d, %eax
            popq %r9
            popq %r8
            popq %rbx
            popq %rdx
            popq %rcx
            popq %rsi
            ret
        """, 64)
        csum = self.sym["csum"]
        # mpscan: RSI start, RCX length -> RAX address of the first "_MP_" (16-byte steps) or 0
        self._emit("mpscan", """
            pushq %rsi
            pushq %rcx
        mpscan_loop:
            cmpq $16, %rcx
            jb mpscan_none
            cmpl $0x5f504d5f, (%rsi)
            je mpscan_found
            addq $16, %rsi
            subq $16, %rcx
            jmp mpscan_loop
        mpscan_none:
            xorl %esi, %esi
        mpscan_found:
            movq %rsi, %rax
            popq %rcx
            popq %rsi
            ret
        """, 64)
        mpscan = self.sym["mpscan"]

        P = self.call_puts
        H = self.call_hex
        nl = f"call {newline:#x}\n"
        lim = layout.IDENTITY_MAP_END

        # ---------------------------------------------------------------- start64
        s64 = f"""
            movl $0x10, %eax
            movl %eax, %ds
            movl %eax, %es
            movl %eax, %ss
            movl %eax, %fs
            movl %eax, %gs
            movl %ebx, %r12d
            movl %esi, %r13d
            movq ${self.bss + BSS_STACK_TOP:#x}, %rsp
            xorl %eax, %eax
            movw ${layout.COM1_PORT + 1:#x}, %dx
            outb %al, %dx
            movb $3, %al
            movw ${layout.COM1_PORT + 3:#x}, %dx
            outb %al, %dx
            {nl}
            {P(f"probe.begin {REPORT_VERSION}")}
            {nl}
            {P("probe.entry ")}
            cmpl ${MARK_START32:#x}, %r13d
            je s64_from32
            cmpl ${MARK_ELF_ENTRY:#x}, %r13d
            je s64_fromelf
            {P("start64")}
            {nl}
            jmp s64_bootinfo
        s64_fromelf:
            {P("elf-entry")}
            jmp s64_start32_state
        s64_from32:
            {P("start32")}
        s64_start32_state:
            {nl}
            {P("probe.start32.cr0 0x")}
            movl {self.save + S32_CR0:#x}, %eax
            {H(8)}
            {nl}
            {P("probe.start32.esp 0x")}
            movl {self.save + S32_ESP:#x}, %eax
            {H(8)}
            {nl}
            {P("probe.start32.cs 0x")}
            movzwl {self.save + S32_CS:#x}, %eax
            {H(4)}
            {nl}
        s64_bootinfo:
            {P("probe.cr 0x")}
            movq %cr0, %rax
            {H(8)}
            {P(" 0x")}
            movq %cr3, %rax
            {H(8)}
            {P(" 0x")}
            movq %cr4, %rax
            {H(8)}
            {P(" 0x")}
            movl ${MSR_EFER:#x}, %ecx
            rdmsr
            {H(8)}
            {nl}
            {P("probe.pt 0x")}
            movq {self.bss + BSS_L4:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movq {self.bss + BSS_L3:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movq {self.bss + BSS_L3 + 8:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movq {self.bss + BSS_L2:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movq {self.bss + BSS_L2 + 8:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movq {self.bss + BSS_L2 + 511 * 8:#x}, %rax
            {H(16)}
            {nl}
            {P("probe.bootinfo 0x")}
            movq %r12, %rax
            {H(8)}
            {nl}
            cmpq ${lim - 0x1000:#x}, %r12
            jae s64_bad_bootinfo
            testq %r12, %r12
            jnz s64_bootinfo_ok
        s64_bad_bootinfo:
            {P("probe.bootinfo.invalid")}
            {nl}
            jmp s64_mptable
        s64_bootinfo_ok:
            {P("probe.bootinfo.flags 0x")}
            movl (%r12), %eax
            {H(8)}
            {nl}
            testl ${LOADER_NAME_FLAG:#x}, (%r12)
            jz s64_noloader
            movl 64(%r12), %edi
            testl %edi, %edi
            jz s64_noloader
            cmpl ${lim - 0x1000:#x}, %edi
            jae s64_noloader
            movq %rdi, %rsi
            movl $64, %ecx
            call {strnlen:#x}
            movq %rax, %rcx
            pushq %rcx
            {P("probe.loader ")}
            movq %rdi, %rsi
            popq %rcx
            call {putesc:#x}
            {nl}
            movq ${self.s("probe.loader.hex ")}, %rsi
            call {hexlines:#x}
            jmp s64_cmdline
        s64_noloader:
            {P("probe.loader.none")}
            {nl}
        s64_cmdline:
            movl 16(%r12), %edi
            testl %edi, %edi
            jz s64_nocmdline
            cmpl ${lim - 0x10000:#x}, %edi
            jae s64_nocmdline
            movq %rdi, %rsi
            movl $0x10000, %ecx
            call {strnlen:#x}
            movq %rax, %r14
            {P("probe.cmdline.addr 0x")}
            movq %rdi, %rax
            {H(8)}
            {nl}
            {P("probe.cmdline.len 0x")}
            movq %r14, %rax
            {H(8)}
            {nl}
            {P("probe.cmdline ")}
            movq %rdi, %rsi
            movq %r14, %rcx
            call {putesc:#x}
            {nl}
            movq ${self.s("probe.cmdline.hex ")}, %rsi
            movq %r14, %rcx
            call {hexlines:#x}
            jmp s64_e820
        s64_nocmdline:
            {P("probe.cmdline.none")}
            {nl}
        s64_e820:
            movl 48(%r12), %edi
            movl 44(%r12), %r14d
            {P("probe.e820.map 0x")}
            movq %rdi, %rax
            {H(8)}
            {P(" 0x")}
            movq %r14, %rax
            {H(8)}
            {nl}
            cmpl ${lim - 0x10000:#x}, %edi
            jae s64_tsc
            cmpl $0x8000, %r14d
            ja s64_tsc
            addq %rdi, %r14
            movl $256, %r15d
        s64_e820_loop:
            leaq 24(%rdi), %rax
            cmpq %r14, %rax
            ja s64_tsc
            cmpl $20, (%rdi)
            jb s64_e820_bad
            {P("probe.e820 0x")}
            movq 4(%rdi), %rax
            {H(16)}
            {P(" 0x")}
            movq 12(%rdi), %rax
            {H(16)}
            {P(" 0x")}
            movl 20(%rdi), %eax
            {H(8)}
            {nl}
            movl (%rdi), %eax
            leaq 4(%rdi,%rax), %rdi
            decl %r15d
            jnz s64_e820_loop
            jmp s64_tsc
        s64_e820_bad:
            {P("probe.e820.bad 0x")}
            movl (%rdi), %eax
            {H(8)}
            {nl}
        s64_tsc:
            {P("probe.tsc 0x")}
            movq 88(%r12), %rax
            {H(16)}
            {P(" 0x")}
            movq 96(%r12), %rax
            {H(16)}
            {P(" 0x")}
            movq 104(%r12), %rax
            {H(16)}
            {nl}
            {P("probe.disk_err 0x")}
            movzbl 112(%r12), %eax
            {H(2)}
            {nl}
        s64_mptable:
            movq $0x9fc00, %rsi
            movl $0x400, %ecx
            call {mpscan:#x}
            testq %rax, %rax
            jnz s64_mp_osv
            xorl %esi, %esi
            movl $0x400, %ecx
            call {mpscan:#x}
            testq %rax, %rax
            jnz s64_mp_osv
            movzwl 0x40e, %esi
            shll $4, %esi
            movl $0x400, %ecx
            call {mpscan:#x}
            testq %rax, %rax
            jnz s64_mp_spec
            movq $0xf0000, %rsi
            movl $0x10000, %ecx
            call {mpscan:#x}
            testq %rax, %rax
            jnz s64_mp_spec
            {P("probe.mptable.none")}
            {nl}
            jmp s64_mbr
        s64_mp_osv:
            movq %rax, %r14
            {P("probe.mptable.rule osv")}
            jmp s64_mp_found
        s64_mp_spec:
            movq %rax, %r14
            {P("probe.mptable.rule spec")}
        s64_mp_found:
            {nl}
            {P("probe.mpfp 0x")}
            movq %r14, %rax
            {H(8)}
            {nl}
            movq ${self.s("probe.mpfp.hex ")}, %rsi
            movq %r14, %rdi
            movl $16, %ecx
            call {hexlines:#x}
            movl 4(%r14), %edi
            cmpl ${lim - 0x10000:#x}, %edi
            jae s64_mp_nopcmp
            cmpl $0x504d4350, (%rdi)
            jne s64_mp_nopcmp
            movzwl 4(%rdi), %r15d
            {P("probe.mptable 0x")}
            movq %rdi, %rax
            {H(8)}
            {P(" 0x")}
            movq %r15, %rax
            {H(4)}
            {nl}
            movq ${self.s("probe.mptable.hex ")}, %rsi
            movq %r15, %rcx
            call {hexlines:#x}
            xorl %ecx, %ecx
            leaq (%rdi,%r15), %r15
            addq $44, %rdi
        s64_mp_walk:
            cmpq %r15, %rdi
            jae s64_mp_count
            cmpb $0, (%rdi)
            jne s64_mp_other
            incl %ecx
            addq $20, %rdi
            jmp s64_mp_walk
        s64_mp_other:
            addq $8, %rdi
            jmp s64_mp_walk
        s64_mp_count:
            {P("probe.cpus 0x")}
            movl %ecx, %eax
            {H(4)}
            {nl}
            jmp s64_mbr
        s64_mp_nopcmp:
            {P("probe.mptable.nopcmp 0x")}
            movl %edi, %eax
            {H(8)}
            {nl}
        s64_mbr:
            cmpw $0xaa55, 0x7dfe
            jne s64_nombr
            movq ${self.s("probe.mbr ")}, %rsi
            movq $0x7dbe, %rdi
            movl $66, %ecx
            call {hexlines:#x}
            jmp s64_image
        s64_nombr:
            {P("probe.mbr.none")}
            {nl}
        s64_image:
            movl $1, %eax
            movq ${BASE:#x}, %rsi
            movl ${SLOT_OFFSET:#x}, %ecx
            call {csum:#x}
            movl %eax, %r14d
            movl {BASE + INFO_OFFSET + 0x0C:#x}, %r15d
            cmpl ${lim - BASE:#x}, %r15d
            jae s64_image_bad
            cmpl ${INFO_SUMS_OFFSET + 8:#x}, %r15d
            jb s64_image_bad
            movl $1, %eax
            movq ${BASE + SLOT_OFFSET:#x}, %rsi
            movl ${INFO_SUMS_OFFSET - SLOT_OFFSET:#x}, %ecx
            call {csum:#x}
            movq ${self.d.addr['idt_zero']:#x}, %rsi
            movl $8, %ecx
            call {csum:#x}
            movq ${BASE + INFO_SUMS_OFFSET + 8:#x}, %rsi
            movl %r15d, %ecx
            subl ${INFO_SUMS_OFFSET + 8:#x}, %ecx
            call {csum:#x}
            movl %eax, %r15d
            cmpl {BASE + INFO_OFFSET + 0x14:#x}, %r15d
            jne s64_image_bad
            {P("probe.image ok 0x")}
            jmp s64_image_print
        s64_image_bad:
            {P("probe.image corrupt 0x")}
        s64_image_print:
            movl %r15d, %eax
            {H(8)}
            {P(" 0x")}
            movl {BASE + INFO_OFFSET + 0x14:#x}, %eax
            {H(8)}
            {P(" 0x")}
            movl {BASE + INFO_OFFSET + 0x0C:#x}, %eax
            {H(8)}
            {nl}
            cmpl {BASE + INFO_OFFSET + 0x10:#x}, %r14d
            jne s64_header_changed
            {P("probe.header ok 0x")}
            jmp s64_header_print
        s64_header_changed:
            {P("probe.header changed 0x")}
        s64_header_print:
            movl %r14d, %eax
            {H(8)}
            {P(" 0x")}
            movl {BASE + INFO_OFFSET + 0x10:#x}, %eax
            {H(8)}
            {nl}
            {P(f"probe.end {REPORT_VERSION}")}
            {nl}
            movb ${layout.BOOT_DONE_VALUE}, %al
            movw ${layout.BOOT_DONE_PORT:#x}, %dx
            outb %al, %dx
            movb ${layout.I8042_RESET_VALUE:#x}, %al
            movw ${layout.I8042_COMMAND_PORT:#x}, %dx
            outb %al, %dx
            lidt {self.d.addr['idt_zero']:#x}
            int3
        s64_halt:
            cli
            hlt
            jmp s64_halt
        """
        self._emit("start64", s64, 64)

        if self.entry_report:
            self._emit("elf_entry", self._elf_entry_text(), 64)
        self._emit("start32", self._start32_text(), 32)

    def _start32_text(self) -> str:
        l4, l3, l2 = self.bss + BSS_L4, self.bss + BSS_L3, self.bss + BSS_L2
        ljmp = byte_directive(far_jump32(SEL_CODE64, self.sym["start64"]))
        return f"""
            cli
            cld
            movl %cr0, %eax
            movl %eax, {self.save + S32_CR0:#x}
            movl %esp, {self.save + S32_ESP:#x}
            movl $0, {self.save + S32_CS:#x}
            movw %cs, {self.save + S32_CS:#x}
            cmpl ${MARK_ELF_ENTRY:#x}, %esi
            je s32_marked
            movl ${MARK_START32:#x}, %esi
        s32_marked:
            lgdtl {self.d.addr['gdt_desc']:#x}
            movl ${SEL_DATA:#x}, %eax
            movl %eax, %ds
            movl %eax, %es
            movl %eax, %fs
            movl %eax, %gs
            movl %eax, %ss
            movl ${self.bss + BSS_STACK_TOP:#x}, %esp
            pushl ${SEL_CODE32:#x}
            pushl $s32_reloaded
            lretl
        s32_reloaded:
            movl %cr0, %eax
            testl $0x80000000, %eax
            jz s32_paging_off
            andl $0x7fffffff, %eax
            movl %eax, %cr0
        s32_paging_off:
            movl ${MSR_EFER:#x}, %ecx
            rdmsr
            andl $0xfffffeff, %eax
            wrmsr
            movl ${l4:#x}, %edi
            xorl %eax, %eax
            movl $0xc00, %ecx
            rep stosl
            movl ${l3 | PT_TABLE_FLAGS:#x}, {l4:#x}
            movl ${l2 | PT_TABLE_FLAGS:#x}, {l3:#x}
            movl ${l2 | PT_TABLE_FLAGS:#x}, {l3 + 8:#x}
            movl ${l2:#x}, %edi
            movl ${PT_2M_FLAGS:#x}, %eax
            movl $512, %ecx
        s32_l2:
            movl %eax, (%edi)
            addl $0x200000, %eax
            addl $8, %edi
            decl %ecx
            jnz s32_l2
            movl ${BOOT_CR4:#x}, %eax
            movl %eax, %cr4
            movl ${l4:#x}, %eax
            movl %eax, %cr3
            movl ${MSR_EFER:#x}, %ecx
            movl ${BOOT_EFER:#x}, %eax
            xorl %edx, %edx
            wrmsr
            movl ${BOOT_CR0:#x}, %eax
            movl %eax, %cr0
            {ljmp}
        """

    def _elf_entry_text(self) -> str:
        sv = self.save
        P = self.call_puts
        H = self.call_hex
        nl = f"call {self.sym['newline']:#x}\n"
        lim = layout.IDENTITY_MAP_END
        bi = BOOT_INFO_ADDR
        name = self.s(ELF_ENTRY_LOADER_NAME)
        prefix = f"""
            movq %rax, {sv + 0x00:#x}
            movq %rbx, {sv + 0x08:#x}
            movq %rcx, {sv + 0x10:#x}
            movq %rdx, {sv + 0x18:#x}
            movq %rsi, {sv + 0x20:#x}
            movq %rdi, {sv + 0x28:#x}
            movq %rbp, {sv + 0x30:#x}
            movq %rsp, {sv + 0x38:#x}
        """
        prefix_len = len(assemble(absolute64(hexify(prefix)), bits=64, base=BASE))
        lines = [prefix, f"""
            leaq 0(%rip), %rax
            movq ${self.bss + BSS_STACK_TOP:#x}, %rsp
            pushfq
            subq ${prefix_len + 7}, %rax
            movq %rax, {sv + 0x48:#x}
            popq %rax
            movq %rax, {sv + 0x40:#x}
            movq %cr0, %rax
            movq %rax, {sv + 0x50:#x}
            movq %cr3, %rax
            movq %rax, {sv + 0x58:#x}
            movq %cr4, %rax
            movq %rax, {sv + 0x60:#x}
            movl ${MSR_EFER:#x}, %ecx
            rdmsr
            shlq $32, %rdx
            orq %rdx, %rax
            movq %rax, {sv + 0x68:#x}
            movw %cs, {sv + 0x70:#x}
            movw %ds, {sv + 0x72:#x}
            movw %es, {sv + 0x74:#x}
            movw %ss, {sv + 0x76:#x}
            movw %fs, {sv + 0x78:#x}
            movw %gs, {sv + 0x7a:#x}
            str %ax
            movw %ax, {sv + 0x7c:#x}
            sgdt {sv + _SAVE_GDTR:#x}
            sidt {sv + _SAVE_IDTR:#x}
            {nl}
            {P(f"probe.state.begin {REPORT_VERSION}")}
            {nl}
        """]
        for key, off, digits in _STATE_REGS:
            mov = "movq" if digits == 16 else "movzwq"
            lines.append(f"""
            {P(f"probe.state.{key} 0x")}
            {mov} {sv + off:#x}, %rax
            {H(digits)}
            {nl}
            """)
        lines.append(f"""
            {P("probe.state.gdtr 0x")}
            movq {sv + _SAVE_GDTR + 2:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movzwq {sv + _SAVE_GDTR:#x}, %rax
            {H(4)}
            {nl}
            {P("probe.state.idtr 0x")}
            movq {sv + _SAVE_IDTR + 2:#x}, %rax
            {H(16)}
            {P(" 0x")}
            movzwq {sv + _SAVE_IDTR:#x}, %rax
            {H(4)}
            {nl}
            movq {sv + _SAVE_GDTR + 2:#x}, %rdi
            cmpq ${lim - 0x1000:#x}, %rdi
            jae ee_nogdt
            movq ${self.s("probe.state.gdt ")}, %rsi
            movl $32, %ecx
            call {self.sym['hexlines']:#x}
        ee_nogdt:
            movq {sv + 0x58:#x}, %rdi
            movabsq $0x000ffffffffff000, %r8
            andq %r8, %rdi
            cmpq ${lim - 0x1000:#x}, %rdi
            jae ee_nopt
            {P("probe.state.pml4_0 0x")}
            movq (%rdi), %rax
            {H(16)}
            {nl}
            movq (%rdi), %rdi
            testb $1, %dil
            jz ee_nopt
            andq %r8, %rdi
            cmpq ${lim - 0x1000:#x}, %rdi
            jae ee_nopt
            {P("probe.state.pdpt_0 0x")}
            movq (%rdi), %rax
            {H(16)}
            {nl}
            movq (%rdi), %rdi
            testb $1, %dil
            jz ee_nopt
            testb $0x80, %dil
            jnz ee_nopt
            andq %r8, %rdi
            cmpq ${lim - 0x1000:#x}, %rdi
            jae ee_nopt
            {P("probe.state.pd 0x")}
            movq (%rdi), %rax
            {H(16)}
            {P(" 0x")}
            movq 8(%rdi), %rax
            {H(16)}
            {P(" 0x")}
            movq 4088(%rdi), %rax
            {H(16)}
            {nl}
        ee_nopt:
            movq {sv + 0x20:#x}, %r12
            testq %r12, %r12
            jz ee_nobp
            cmpq ${lim - 0x1000:#x}, %r12
            jb ee_bp
        ee_nobp:
            {P("probe.state.bp.none")}
            {nl}
            xorl %r12d, %r12d
            jmp ee_continue
        ee_bp:
        """)
        for key, bpoff, size, _soff, digits in _BP_FIELDS:
            mov = {1: "movzbq", 2: "movzwq", 4: "movl", 8: "movq"}[size]
            dst = "%eax" if size == 4 else "%rax"
            lines.append(f"""
            {P(f"probe.state.bp.{key} 0x")}
            {mov} {bpoff:#x}(%r12), {dst}
            {H(digits)}
            {nl}
            """)
        lines.append(f"""
            movzbl 0x1e8(%r12), %r13d
            cmpl ${BP_E820_MAX}, %r13d
            jbe ee_e820_count
            movl ${BP_E820_MAX}, %r13d
        ee_e820_count:
            leaq {BP_E820_OFFSET:#x}(%r12), %rdi
        ee_e820_print:
            testl %r13d, %r13d
            jz ee_continue
            {P("probe.state.bp.e820 0x")}
            movq (%rdi), %rax
            {H(16)}
            {P(" 0x")}
            movq 8(%rdi), %rax
            {H(16)}
            {P(" 0x")}
            movl 16(%rdi), %eax
            {H(8)}
            {nl}
            addq $20, %rdi
            decl %r13d
            jmp ee_e820_print
        ee_continue:
            {P(f"probe.state.end {REPORT_VERSION}")}
            {nl}
            movq ${bi:#x}, %rdi
            xorl %eax, %eax
            movl $128, %ecx
            rep stosb
            movl ${LOADER_NAME_FLAG:#x}, {bi:#x}
            movl ${name:#x}, {bi + 64:#x}
            movl ${E820_ADDR:#x}, {bi + 48:#x}
            testq %r12, %r12
            jz ee_tsc
            movl 0x228(%r12), %eax
            movl %eax, {bi + 16:#x}
            movzbl 0x1e8(%r12), %ecx
            cmpl ${BP_E820_MAX}, %ecx
            jbe ee_copy_count
            movl ${BP_E820_MAX}, %ecx
        ee_copy_count:
            imull $24, %ecx, %eax
            movl %eax, {bi + 44:#x}
            leaq {BP_E820_OFFSET:#x}(%r12), %rsi
            movq ${E820_ADDR:#x}, %rdi
        ee_copy:
            testl %ecx, %ecx
            jz ee_tsc
            movl $20, (%rdi)
            movq (%rsi), %rax
            movq %rax, 4(%rdi)
            movq 8(%rsi), %rax
            movq %rax, 12(%rdi)
            movl 16(%rsi), %eax
            movl %eax, 20(%rdi)
            addq $20, %rsi
            addq $24, %rdi
            decl %ecx
            jmp ee_copy
        ee_tsc:
            rdtsc
            movl %eax, {bi + 88:#x}
            movl %edx, {bi + 92:#x}
            movl %eax, {bi + 96:#x}
            movl %edx, {bi + 100:#x}
            movl %eax, {bi + 104:#x}
            movl %edx, {bi + 108:#x}
            lgdt {self.d.addr['gdt_desc']:#x}
            movl ${bi:#x}, %ebx
            movq %r12, %rdi
            movl ${MARK_ELF_ENTRY:#x}, %esi
            movl {BASE + SLOT_OFFSET:#x}, %eax
            pushq ${SEL_CODE32:#x}
            pushq %rax
            lretq
        """)
        return "\n".join(lines)


_DECIMAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def hexify(text: str) -> str:
    """Rewrite decimal literals as hex: Keystone 0.9.2 reads a bare ``16`` in AT&T syntax as
    0x16 (``movl $16, %ecx`` assembles to ``mov $0x16``), so generated code uses hex only."""
    return _DECIMAL.sub(lambda m: hex(int(m.group(1))), text)


_ABS_OPERAND = re.compile(r"(?<![$\w(])(\*?)(0x[0-9a-fA-F]+)(?=\s*(?:,|$))")


def absolute64(text: str, scratch: str = "%r11") -> str:
    """Rewrite absolute memory operands in 64-bit code as ``(scratch)`` after a
    ``movq $addr, scratch``: Keystone 0.9.2 turns ``movq 0x205048, %rax`` into a RIP-relative
    load that ignores RIP (stores come out right).  ``scratch`` must be free in ``text``."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*([a-z0-9]+)\s+(.*)$", line)
        if m and not line.rstrip().endswith(":"):
            mnemonic, operands = m.groups()
            direct_branch = (mnemonic.startswith("j") or mnemonic.startswith("call")) and \
                not operands.lstrip().startswith("*")
            am = None if direct_branch else _ABS_OPERAND.search(operands)
            if am:
                out.append(f"movq ${am.group(2)}, {scratch}")
                line = line[:m.start(2)] + operands[:am.start()] + f"{am.group(1)}({scratch})" \
                    + operands[am.end():]
        out.append(line)
    return "\n".join(out)


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


# ----------------------------------------------------------------------------------------
# Payload: filler that compresses about like kernel code
# ----------------------------------------------------------------------------------------
_REGS64 = ["rax", "rcx", "rdx", "rbx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
           "r13", "r14", "r15"]
_REGS32 = ["eax", "ecx", "edx", "ebx", "esi", "edi", "r8d", "r9d", "r12d", "r13d"]
_TEMPLATES = [
    "movq %{a}, %{b}", "movq {d}(%{a}), %{b}", "movq %{a}, {d}(%{b})", "movl {d}(%{a}), %{c}",
    "movl ${i}, %{c}", "leaq {d}(%{a}), %{b}", "addq ${s}, %{a}", "subq ${s}, %{a}",
    "cmpq ${s}, %{a}", "testq %{a}, %{b}", "xorl %{c}, %{c}", "andl ${i}, %{c}",
    "cmpl ${i}, {d}(%{a})", "pushq %{a}", "popq %{a}", "movzbl {d}(%{a}), %{c}",
    "shlq ${sh}, %{a}", "shrq ${sh}, %{a}", "imulq %{a}, %{b}", "incl %{c}",
    "movq {d}(%{a},%{b},8), %{b}", "orq %{a}, %{b}", "addl %{c}, %{c}", "ret",
    "movabsq ${q:#x}, %{a}", "movq ${s}, {d}(%{a})",
]


@functools.lru_cache(maxsize=1)
def _instruction_pool() -> tuple[bytes, ...]:
    """A fixed pool of assembled x86-64 instructions with varied registers and immediates."""
    rng = random.Random(0x05F0)
    pool = []
    texts = []
    for _ in range(1500):
        t = rng.choice(_TEMPLATES)
        texts.append(t.format(
            a=rng.choice(_REGS64), b=rng.choice(_REGS64), c=rng.choice(_REGS32),
            d=rng.choice([0, 8, 16, 24, 32, 0x40, 0x58, 0x80, 0x118, -8, -16, -0x38]),
            i=rng.choice([0, 1, 2, 0xff, 0x1000, rng.randrange(1 << 31)]),
            s=rng.choice([1, 8, 16, 0x20, 0x78]), sh=rng.choice([1, 3, 4, 12, 21]),
            q=rng.randrange(1 << 47)))
    for t in texts:
        pool.append(assemble(hexify(t), bits=64))
    return tuple(pool)


_PAYLOAD_BLOCK = 512 * 1024
_IDIOM_P = 0.15


@functools.lru_cache(maxsize=1)
def _payload_block() -> bytes:
    """512 KiB of function-shaped code from the pool; deterministic."""
    pool = _instruction_pool()
    rng = random.Random(0x0C0DE)
    prologue = assemble("pushq %rbp\nmovq %rsp, %rbp\npushq %rbx\npushq %r12", bits=64)
    epilogue = assemble("popq %r12\npopq %rbx\npopq %rbp\nret", bits=64)
    out = bytearray()
    n = len(pool)
    while len(out) < _PAYLOAD_BLOCK:
        out += prologue
        for _ in range(rng.randrange(4, 40)):
            r = rng.random()
            if r < _IDIOM_P and len(out) > 4096:   # an idiom seen recently, copied
                start = len(out) - rng.randrange(64, 4096)
                out += out[start:start + rng.randrange(6, 28)]
            elif r < _IDIOM_P + 0.08:   # call rel32 to a "function"
                out += b"\xE8" + struct.pack("<i", rng.randrange(-0x80000, 0x80000))
            elif r < _IDIOM_P + 0.14:  # short conditional branch
                out += bytes((0x70 + rng.randrange(16), rng.randrange(2, 0x60)))
            else:
                out += pool[int(n * rng.random() ** 2.2)]
        out += epilogue
        while len(out) % 16:
            out.append(0xCC)
    return bytes(out[:_PAYLOAD_BLOCK])


def payload(length: int) -> bytes:
    """``length`` bytes of code-like filler: rotations of one 512 KiB block, so any 1 MiB
    FastLZ segment compresses about as well as the block itself."""
    block = _payload_block()
    parts = []
    k = 0
    total = 0
    while total < length:
        rot = (k * 0x1F3D0) % len(block)
        part = block[rot:] + block[:rot]
        parts.append(part)
        total += len(part)
        k += 1
    return b"".join(parts)[:length]


# ----------------------------------------------------------------------------------------
# ELF writer
# ----------------------------------------------------------------------------------------
_SHSTRTAB = b"\0.text\0.data\0.probe.payload\0.bss\0.symtab\0.strtab\0.shstrtab\0"
_SYMBOLS = ("start32", "start64", "ident_pt_l4", "probe_info", "probe_elf_entry")


def _shname(name: str) -> int:
    return _SHSTRTAB.index(b"\0" + name.encode() + b"\0") + 1


def _tail_size(nsyms: int) -> int:
    strtab = 1 + sum(len(s) + 1 for s in _SYMBOLS)
    size = (1 + nsyms) * SYM_SIZE + strtab + len(_SHSTRTAB)
    return _align(size, 8) + 8 * SHDR_SIZE


def build_probe(size: int | None = None, *, entry_report: bool = False) -> bytes:
    """Return the probe kernel ELF.  ``size`` pads the file to exactly that many bytes with
    code-like payload inside the PT_LOAD."""
    nsyms = 5 if entry_report else 4
    tail = _tail_size(nsyms)
    # Pass 1: the code's size does not depend on the bss address (all immediates are 32-bit).
    probe_code = _Builder(0x100000, entry_report)
    probe_code.build()
    code_end = CODE_OFFSET + len(probe_code.code)
    payload_off = _align(code_end, 16)
    min_size = payload_off + tail
    if size is None:
        filesz = payload_off
    else:
        if size < min_size or size > MAX_SIZE:
            raise UsageError(f"probe size {size} out of range",
                             expected=f"{min_size} to {MAX_SIZE} bytes")
        filesz = (size - tail) & ~(MIN_SIZE_ALIGN - 1)
        if filesz < payload_off:
            filesz = payload_off
    b = _Builder(filesz, entry_report)
    b.build()
    if len(b.code) != len(probe_code.code):  # pragma: no cover - layout invariant
        raise AssertionError("probe code size depends on its bss address")
    bss_off = b.bss - BASE
    memsz = bss_off + BSS_SIZE
    entry = b.sym["elf_entry"] if entry_report else b.sym["start32"]

    image = bytearray(filesz)
    image[DATA_OFFSET:DATA_OFFSET + len(b.d.buf)] = b.d.buf
    image[CODE_OFFSET:code_end] = b.code
    if filesz > payload_off:
        image[payload_off:filesz] = payload(filesz - payload_off)
    struct.pack_into("<Q", image, SLOT_OFFSET, b.sym["start32"])

    # tail: symtab, strtab, shstrtab, section headers
    tail_off = filesz
    syms = [Elf64_Sym.build(dict(st_name=0, st_info=0, st_other=0, st_shndx=0, st_value=0,
                                 st_size=0))]
    sym_values = {
        "start32": (b.sym["start32"], 1, STT_FUNC),
        "start64": (b.sym["start64"], 1, STT_FUNC),
        "ident_pt_l4": (b.bss + BSS_L4, 4, STT_OBJECT),
        "probe_info": (BASE + INFO_OFFSET, 2, STT_OBJECT),
    }
    if entry_report:
        sym_values["probe_elf_entry"] = (b.sym["elf_entry"], 1, STT_FUNC)
    strtab = bytearray(b"\0")
    for name in _SYMBOLS:
        if name not in sym_values:
            continue
        value, shndx, stype = sym_values[name]
        st_name = len(strtab)
        strtab += name.encode() + b"\0"
        syms.append(Elf64_Sym.build(dict(st_name=st_name, st_info=(STB_GLOBAL << 4) | stype,
                                         st_other=0, st_shndx=shndx,
                                         st_value=value + VM_SHIFT, st_size=0)))
    symtab = b"".join(syms)
    symtab_off = tail_off
    strtab_off = symtab_off + len(symtab)
    shstr_off = strtab_off + len(strtab)
    shoff = _align(shstr_off + len(_SHSTRTAB), 8) if size is None else size - 8 * SHDR_SIZE
    shdrs = [
        dict(sh_name=0, sh_type=0, sh_flags=0, sh_addr=0, sh_offset=0, sh_size=0, sh_link=0,
             sh_info=0, sh_addralign=0, sh_entsize=0),
        dict(sh_name=_shname(".text"), sh_type=SHT_PROGBITS, sh_flags=SHF_ALLOC | SHF_EXECINSTR,
             sh_addr=VM_BASE + CODE_OFFSET, sh_offset=CODE_OFFSET, sh_size=code_end - CODE_OFFSET,
             sh_link=0, sh_info=0, sh_addralign=16, sh_entsize=0),
        dict(sh_name=_shname(".data"), sh_type=SHT_PROGBITS, sh_flags=SHF_ALLOC | SHF_WRITE,
             sh_addr=VM_BASE + SLOT_OFFSET, sh_offset=SLOT_OFFSET,
             sh_size=CODE_OFFSET - SLOT_OFFSET, sh_link=0, sh_info=0, sh_addralign=8,
             sh_entsize=0),
        dict(sh_name=_shname(".probe.payload"), sh_type=SHT_PROGBITS, sh_flags=SHF_ALLOC,
             sh_addr=VM_BASE + payload_off, sh_offset=payload_off, sh_size=filesz - payload_off,
             sh_link=0, sh_info=0, sh_addralign=16, sh_entsize=0),
        dict(sh_name=_shname(".bss"), sh_type=SHT_NOBITS, sh_flags=SHF_ALLOC | SHF_WRITE,
             sh_addr=VM_BASE + bss_off, sh_offset=bss_off if size is None else filesz,
             sh_size=BSS_SIZE, sh_link=0, sh_info=0, sh_addralign=4096, sh_entsize=0),
        dict(sh_name=_shname(".symtab"), sh_type=SHT_SYMTAB, sh_flags=0, sh_addr=0,
             sh_offset=symtab_off, sh_size=len(symtab), sh_link=6, sh_info=1, sh_addralign=8,
             sh_entsize=SYM_SIZE),
        dict(sh_name=_shname(".strtab"), sh_type=SHT_STRTAB, sh_flags=0, sh_addr=0,
             sh_offset=strtab_off, sh_size=len(strtab), sh_link=0, sh_info=0, sh_addralign=1,
             sh_entsize=0),
        dict(sh_name=_shname(".shstrtab"), sh_type=SHT_STRTAB, sh_flags=0, sh_addr=0,
             sh_offset=shstr_off, sh_size=len(_SHSTRTAB), sh_link=0, sh_info=0,
             sh_addralign=1, sh_entsize=0),
    ]
    image[0:EHDR_SIZE] = Elf64_Ehdr.build(dict(
        e_ident_osabi=0, e_ident_pad=bytes(8), e_type=ET_EXEC, e_machine=EM_X86_64,
        e_version=EV_CURRENT, e_entry=entry, e_phoff=EHDR_SIZE, e_shoff=shoff, e_flags=0,
        e_ehsize=EHDR_SIZE, e_phentsize=PHDR_SIZE, e_phnum=1, e_shentsize=SHDR_SIZE,
        e_shnum=len(shdrs), e_shstrndx=len(shdrs) - 1))
    image[EHDR_SIZE:EHDR_SIZE + PHDR_SIZE] = Elf64_Phdr.build(dict(
        p_type=PT_LOAD, p_flags=PF_RWX, p_offset=0, p_vaddr=VM_BASE, p_paddr=BASE,
        p_filesz=filesz, p_memsz=memsz, p_align=0x1000))
    info = dict(version=INFO_VERSION, image_len=filesz, header_sum=0, body_sum=0,
                flags=FLAG_ENTRY_REPORT if entry_report else 0)
    image[INFO_OFFSET:INFO_OFFSET + ProbeInfo.sizeof()] = ProbeInfo.build(info)
    view = memoryview(image)
    info["header_sum"] = checksum(view[:SLOT_OFFSET])
    info["body_sum"] = checksum(view[SLOT_OFFSET:filesz])
    image[INFO_OFFSET:INFO_OFFSET + ProbeInfo.sizeof()] = ProbeInfo.build(info)

    out = bytearray(image)
    out += bytes(tail_off - len(out))
    out += symtab + strtab + _SHSTRTAB
    out += bytes(shoff - len(out))
    out += b"".join(Elf64_Shdr.build(s) for s in shdrs)
    if size is not None and len(out) != size:  # pragma: no cover - layout invariant
        raise AssertionError(f"probe is {len(out)} bytes, not {size}")
    return bytes(out)


def probe_symbols(data: bytes) -> dict[str, int]:
    """Physical addresses of the probe's routines, read back from ``.symtab``."""
    from ..image.kernel import check_kernel

    k = check_kernel(data)
    return {name: value - VM_SHIFT for name, value in k.symbols.items()}


@dataclass
class ProbeBuild:
    """What :func:`osvkit.probe.write_probe` wrote."""

    path: str | None
    size: int
    entry: int
    start32: int
    start64: int
    entry_report: bool
    image_len: int
    header_sum: int
    body_sum: int

    @classmethod
    def from_bytes(cls, data: bytes, path: str | None = None) -> "ProbeBuild":
        info = read_info(data)
        syms = probe_symbols(data)
        entry = struct.unpack_from("<Q", data, 0x18)[0]
        return cls(path=path, size=len(data), entry=entry, start32=syms["start32"],
                   start64=syms["start64"], entry_report=bool(info.flags & FLAG_ENTRY_REPORT),
                   image_len=info.image_len, header_sum=info.header_sum, body_sum=info.body_sum)

    def to_dict(self) -> dict:
        return asdict(self)


def read_info(data: bytes):
    """The probe info block at +0x808 (a construct Container); FormatError if absent."""
    from construct import ConstructError

    from ..errors import FormatError
    try:
        return ProbeInfo.parse(data[INFO_OFFSET:INFO_OFFSET + ProbeInfo.sizeof()])
    except ConstructError:
        raise FormatError("no probe info block at +0x808",
                          expected=f"magic {INFO_MAGIC!r} (a kernel made by osvkit probe)") from None

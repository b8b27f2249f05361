"""Small hand-built kernel ELFs keeping OSv's contract, for the fcpath tests.

``make_kernel()`` writes, with ``struct`` only (nothing computed by osvkit):

* ELF64 x86-64 header; program headers at 0x40;
* PT_LOAD from file offset 0 at vaddr 0x40200000 / paddr 0x200000 (filesz = the image,
  memsz = image + ``bss``);
* optional PT_NOTE with a Xen PHYS32_ENTRY note (``pvh_note``);
* the start32 slot at +0x800 = 0x201000; ``code`` at +0x1000 (default: ``hlt`` loop);
* ``.symtab`` with start32/start64/ident_pt_l4 (virtual addresses, as OSv), ``.strtab``,
  ``.shstrtab`` and the section header table at the end of the file.
"""

from __future__ import annotations

import struct

KERNEL_PADDR = 0x200000
KERNEL_VADDR = 0x40200000
START32 = 0x201000


def make_kernel(*, code: bytes = b"\xf4\xeb\xfd", image_size: int = 0x3000, bss: int = 0x1000,
                entry: int = START32, pvh_note: int | None = None, symbols: bool = True,
                extra_phdrs: int = 0, machine: int = 62, elfclass: int = 2,
                image_paddr: int = KERNEL_PADDR, start32: int = START32,
                extra_symbols: dict[str, int] | None = None) -> bytes:
    phnum = 1 + (1 if pvh_note is not None else 0) + extra_phdrs
    img = bytearray(image_size)
    img[0x1000:0x1000 + len(code)] = code
    struct.pack_into("<Q", img, 0x800, start32)
    if image_size >= 0x2008:
        struct.pack_into("<Q", img, 0x2000, 0x203003)   # ident_pt_l4[0]: present (static table)
    note_off = 0x900
    if pvh_note is not None:
        img[note_off:note_off + 24] = struct.pack("<III4sQ", 4, 8, 18, b"Xen\0", pvh_note)
    # section contents after the image
    strtab = b"\0start32\0start64\0ident_pt_l4\0"
    extra = []
    for name, value in (extra_symbols or {}).items():
        extra.append((len(strtab), value))
        strtab += name.encode() + b"\0"
    shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0"
    syms = b"\0" * 24
    if symbols:
        for name_off, value in ((1, KERNEL_VADDR + 0x1000), (9, KERNEL_VADDR + 0x1010),
                                (17, KERNEL_VADDR + 0x2000)):
            syms += struct.pack("<IBBHQQ", name_off, 0x12, 0, 1, value, 0)
    for name_off, value in extra:
        syms += struct.pack("<IBBHQQ", name_off, 0x11, 0, 1, value, 0)
    body = bytearray(img)
    symtab_off = len(body)
    body += syms
    strtab_off = len(body)
    body += strtab
    shstr_off = len(body)
    body += shstrtab
    while len(body) % 8:
        body += b"\0"
    shoff = len(body)
    sh = bytes(64)
    sh += struct.pack("<IIQQQQIIQQ", 1, 1, 6, KERNEL_VADDR + 0x1000, 0x1000, image_size - 0x1000,
                      0, 0, 16, 0)  # .text
    sh += struct.pack("<IIQQQQIIQQ", 7, 2, 0, 0, symtab_off, len(syms), 3, 1, 8, 24)  # .symtab
    sh += struct.pack("<IIQQQQIIQQ", 15, 3, 0, 0, strtab_off, len(strtab), 0, 0, 1, 0)
    sh += struct.pack("<IIQQQQIIQQ", 23, 3, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0)
    body += sh
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", elfclass, 1, 1, 0, 0, bytes(7),
                       2, machine, 1, entry, 0x40, shoff, 0, 64, 56, phnum, 64, 5, 4)
    body[0:64] = ehdr
    phdrs = struct.pack("<IIQQQQQQ", 1, 7, 0, KERNEL_VADDR, image_paddr, image_size,
                        image_size + bss, 0x200000)
    if pvh_note is not None:
        phdrs += struct.pack("<IIQQQQQQ", 4, 4, note_off, KERNEL_VADDR + note_off,
                             image_paddr + note_off, 24, 24, 4)
    for _ in range(extra_phdrs):
        phdrs += struct.pack("<IIQQQQQQ", 0x6474E551, 6, 0, 0, 0, 0, 0, 16)  # PT_GNU_STACK
    body[0x40:0x40 + len(phdrs)] = phdrs
    return bytes(body)


# ---------------------------------------------------------------------------------------
# A 64-bit "state dump" kernel: at its entry it records every register, then prints them
# and selected memory on COM1, signals boot-done (123 -> port 0x3F0) and triple-faults.
# ---------------------------------------------------------------------------------------

DUMP_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
             "r12", "r13", "r14", "r15")
DUMP_MEM = (("gdt", 0x500, 0x20), ("idt", 0x520, 0x8), ("zeropage", 0x7000, 0x1000),
            ("pt", 0x9000, 0x3000), ("mptable", 0x9FC00, 0x400), ("cmdline", 0x20000, 0x800),
            ("low", 0x0, 0x500), ("bss", 0x203000, 0x1000))


def state_dump_code(base: int = START32, *, save_offset: int = 0x1800,
                    report_rip: bool = False, mem=DUMP_MEM) -> bytes:
    from osvkit.asm import assemble

    save = base + save_offset     # register save area inside the image (file +0x2800)
    names = base + 0xA00
    lines = []
    for i, r in enumerate(DUMP_REGS):
        lines.append(f"movq %{r}, {save + 8 * i:#x}")
    n = len(DUMP_REGS)
    extra = ["rflags", "cr0", "cr3", "cr4", "efer", "cs", "ds", "es", "ss", "fs", "gs", "tr",
             "gdtr_base", "gdtr_limit", "idtr_base", "idtr_limit"]
    lines += [
        "pushfq", "popq %rax", f"movq %rax, {save + 8 * n:#x}",
        "movq %cr0, %rax", f"movq %rax, {save + 8 * (n + 1):#x}",
        "movq %cr3, %rax", f"movq %rax, {save + 8 * (n + 2):#x}",
        "movq %cr4, %rax", f"movq %rax, {save + 8 * (n + 3):#x}",
        "movl $0xc0000080, %ecx", "rdmsr", "shlq $0x20, %rdx", "orq %rdx, %rax",
        f"movq %rax, {save + 8 * (n + 4):#x}",
    ]
    for j, seg in enumerate(("cs", "ds", "es", "ss", "fs", "gs")):
        lines += ["xorl %eax, %eax", f"movw %{seg}, %ax", f"movq %rax, {save + 8 * (n + 5 + j):#x}"]
    lines += ["xorl %eax, %eax", "str %ax", f"movq %rax, {save + 8 * (n + 11):#x}"]
    # Keystone encodes 64-bit loads from an absolute address as RIP-relative with the raw
    # address as displacement: load through a base register instead.
    lines += [f"movl ${save:#x}, %edi", "sgdt 0x200(%rdi)", "sidt 0x210(%rdi)",
              "movzwl 0x200(%rdi), %eax", f"movq %rax, {8 * (n + 13):#x}(%rdi)",
              "movq 0x202(%rdi), %rax", f"movq %rax, {8 * (n + 12):#x}(%rdi)",
              "movzwl 0x210(%rdi), %eax", f"movq %rax, {8 * (n + 15):#x}(%rdi)",
              "movq 0x212(%rdi), %rax", f"movq %rax, {8 * (n + 14):#x}(%rdi)"]
    if report_rip:                # where this code runs (after the saves above)
        extra.append("rip")
        lines += ["leaq 0(%rip), %rax", f"movq %rax, {8 * (n + 16):#x}(%rdi)"]
    allnames = list(DUMP_REGS) + extra
    name_blob = b""
    name_at = []
    for nm in allnames:
        name_at.append(names + len(name_blob))
        name_blob += f"REG {nm}=".encode() + b"\0"
    mem_at = []
    for nm, _a, _l in mem:
        mem_at.append(names + len(name_blob))
        name_blob += f"MEM {nm} ".encode() + b"\0"
    for i, nm in enumerate(allnames):
        lines += [f"movl ${name_at[i]:#x}, %esi", "call put_str",
                  f"movl ${save:#x}, %edi", f"movq {8 * i:#x}(%rdi), %rax", "call put_hex"]
    for i, (nm, addr, ln) in enumerate(mem):
        lines += [f"movl ${mem_at[i]:#x}, %esi", "call put_str",
                  f"movl ${addr:#x}, %esi", f"movl ${ln:#x}, %ecx", "call put_mem"]
    lines += [
        "movw $0x3f0, %dx", "movb $0x7b, %al", "outb %al, %dx",     # boot-done 123
        f"movl ${save + 0x220:#x}, %edi", "lidt (%rdi)", "int3",
        "put_char:", "pushq %rdx", "movw $0x3f8, %dx", "outb %al, %dx", "popq %rdx", "ret",
        "put_str:", "movb (%rsi), %al", "testb %al, %al", "jz put_str_done", "call put_char",
        "incq %rsi", "jmp put_str", "put_str_done:", "ret",
        "put_nibble:", "andb $0xf, %al", "cmpb $0xa, %al", "jb put_nib_digit", "addb $0x27, %al",
        "put_nib_digit:", "addb $0x30, %al", "call put_char", "ret",
        "put_hex:", "movq %rax, %rbx", "movl $0x10, %ecx",
        "put_hex_loop:", "rolq $0x4, %rbx", "movb %bl, %al", "call put_nibble",
        "decl %ecx", "jnz put_hex_loop", "movb $0xa, %al", "call put_char", "ret",
        "put_mem:", "put_mem_loop:", "movb (%rsi), %bl", "movb %bl, %al", "shrb $0x4, %al",
        "call put_nibble", "movb %bl, %al", "call put_nibble", "incq %rsi", "decl %ecx",
        "jnz put_mem_loop", "movb $0xa, %al", "call put_char", "ret",
    ]
    code = assemble("\n".join(lines), bits=64, base=base)
    assert len(code) < 0x800, len(code)
    out = bytearray(0xA00 + len(name_blob))
    out[:len(code)] = code
    out[0xA00:] = name_blob
    return bytes(out)


def parse_state_dump(console: str) -> tuple[dict[str, int], dict[str, bytes]]:
    regs, mem = {}, {}
    for line in console.splitlines():
        line = line.strip()
        if line.startswith("REG ") and "=" in line:
            k, v = line[4:].split("=", 1)
            regs[k] = int(v, 16)
        elif line.startswith("MEM "):
            _, k, v = line.split(" ", 2)
            mem[k] = bytes.fromhex(v)
    return regs, mem


def make_dump_kernel(**kw) -> bytes:
    """An OSv-contract kernel whose e_entry (0x201000) is the 64-bit state dump, like a
    kernel with its own Linux entry; the start32 slot points elsewhere in the image
    (0x202F00).  Image 0x3000 bytes + 0x1000 bss at 0x203000 (not in the file: the loader
    must zero it)."""
    kw.setdefault("start32", 0x202F00)
    return make_kernel(code=state_dump_code(), image_size=0x3000, bss=0x1000, **kw)


# ---------------------------------------------------------------------------------------
# A 32-bit "state dump" for the PVH entry: the same REG/MEM lines for what Firecracker's
# PVH boot leaves (32-bit protected mode, paging off, EBX = hvm_start_info).
# ---------------------------------------------------------------------------------------

PVH_DUMP_REGS = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp")
PVH_DUMP_MEM = (("gdt", 0x500, 0x20), ("idt", 0x520, 0x8), ("start_info", 0x6000, 0x40),
                ("memmap", 0x7000, 0x100), ("mptable", 0x9FC00, 0x400),
                ("cmdline", 0x20000, 0x800), ("low", 0x0, 0x500), ("bss", 0x203000, 0x1000))


def pvh_state_dump_code(base: int = START32, *, mem=None) -> bytes:
    """32-bit code that records every register first (ESP may be 0: no stack until then),
    then prints them and selected memory like :func:`state_dump_code`."""
    from osvkit.asm import assemble

    mem = PVH_DUMP_MEM if mem is None else mem
    save = base + 0x1800
    names = base + 0xA00
    stack = base + 0x1F00
    lines = [f"movl %{r}, {save + 4 * i:#x}" for i, r in enumerate(PVH_DUMP_REGS)]
    n = len(PVH_DUMP_REGS)
    extra = ["eflags", "cr0", "cr3", "cr4", "efer", "cs", "ds", "es", "ss", "fs", "gs", "tr",
             "gdtr_base", "gdtr_limit", "idtr_base", "idtr_limit"]
    lines += [
        f"movl ${stack:#x}, %esp",
        "pushfl", "popl %eax", f"movl %eax, {save + 4 * n:#x}",
        "movl %cr0, %eax", f"movl %eax, {save + 4 * (n + 1):#x}",
        "movl %cr3, %eax", f"movl %eax, {save + 4 * (n + 2):#x}",
        "movl %cr4, %eax", f"movl %eax, {save + 4 * (n + 3):#x}",
        "movl $0xc0000080, %ecx", "rdmsr", f"movl %eax, {save + 4 * (n + 4):#x}",
    ]
    for j, seg in enumerate(("cs", "ds", "es", "ss", "fs", "gs")):
        lines += ["xorl %eax, %eax", f"movw %{seg}, %ax", f"movl %eax, {save + 4 * (n + 5 + j):#x}"]
    lines += ["xorl %eax, %eax", "str %ax", f"movl %eax, {save + 4 * (n + 11):#x}",
              f"sgdt {save + 0x200:#x}", f"sidt {save + 0x210:#x}",
              f"movl {save + 0x202:#x}, %eax", f"movl %eax, {save + 4 * (n + 12):#x}",
              f"movzwl {save + 0x200:#x}, %eax", f"movl %eax, {save + 4 * (n + 13):#x}",
              f"movl {save + 0x212:#x}, %eax", f"movl %eax, {save + 4 * (n + 14):#x}",
              f"movzwl {save + 0x210:#x}, %eax", f"movl %eax, {save + 4 * (n + 15):#x}"]
    allnames = list(PVH_DUMP_REGS) + extra
    name_blob = b""
    name_at = []
    for nm in allnames:
        name_at.append(names + len(name_blob))
        name_blob += f"REG {nm}=".encode() + b"\0"
    mem_at = []
    for nm, _a, _l in mem:
        mem_at.append(names + len(name_blob))
        name_blob += f"MEM {nm} ".encode() + b"\0"
    for i in range(len(allnames)):
        lines += [f"movl ${name_at[i]:#x}, %esi", "call put_str",
                  f"movl {save + 4 * i:#x}, %eax", "call put_hex"]
    for i, (_nm, addr, ln) in enumerate(mem):
        lines += [f"movl ${mem_at[i]:#x}, %esi", "call put_str",
                  f"movl ${addr:#x}, %esi", f"movl ${ln:#x}, %ecx", "call put_mem"]
    lines += [
        "movw $0x3f0, %dx", "movb $0x7b, %al", "outb %al, %dx",     # boot-done 123
        f"lidt {save + 0x220:#x}", "int3",
        "put_char:", "pushl %edx", "movw $0x3f8, %dx", "outb %al, %dx", "popl %edx", "ret",
        "put_str:", "movb (%esi), %al", "testb %al, %al", "jz put_str_done", "call put_char",
        "incl %esi", "jmp put_str", "put_str_done:", "ret",
        "put_nibble:", "andb $0xf, %al", "cmpb $0xa, %al", "jb put_nib_digit", "addb $0x27, %al",
        "put_nib_digit:", "addb $0x30, %al", "call put_char", "ret",
        "put_hex:", "movl %eax, %ebx", "movl $0x8, %ecx",
        "put_hex_loop:", "roll $0x4, %ebx", "movb %bl, %al", "call put_nibble",
        "decl %ecx", "jnz put_hex_loop", "movb $0xa, %al", "call put_char", "ret",
        "put_mem:", "put_mem_loop:", "movb (%esi), %bl", "movb %bl, %al", "shrb $0x4, %al",
        "call put_nibble", "movb %bl, %al", "call put_nibble", "incl %esi", "decl %ecx",
        "jnz put_mem_loop", "movb $0xa, %al", "call put_char", "ret",
    ]
    code = assemble("\n".join(lines), bits=32, base=base)
    assert len(code) < 0xA00, len(code)
    out = bytearray(0xA00 + len(name_blob))
    out[:len(code)] = code
    out[0xA00:] = name_blob
    return bytes(out)


def make_pvh_dump_kernel(**kw) -> bytes:
    """An OSv-contract kernel whose PVH note names the 32-bit state dump at 0x201000."""
    kw.setdefault("start32", 0x202F00)
    return make_kernel(code=pvh_state_dump_code(), image_size=0x3000, bss=0x1000,
                       pvh_note=START32, **kw)


def make_start64_kernel() -> bytes:
    """A kernel for ``--handover start64`` laid out like OSv: a static ``ident_pt_l4`` at
    +0x2000 (symbol 0x40202000) whose l3[0] and l3[1] both point at one l2 of 2 MiB pages
    (0-1 GiB identity and 1-2 GiB onto 0-1 GiB, as OSv's boot.S maps them), and the 64-bit state
    dump at ``start64`` (symbol 0x40201010, run at that linked address)."""
    code = bytes(0x10) + state_dump_code(base=KERNEL_VADDR + 0x1010, save_offset=0x4800,
                                         report_rip=True)
    img = bytearray(make_kernel(code=code, image_size=0x6000, bss=0x1000))
    struct.pack_into("<QQ", img, 0x3000, 0x204003, 0x204003)        # l3[0], l3[1] -> l2
    for i in range(512):
        struct.pack_into("<Q", img, 0x4000 + 8 * i, (i << 21) | 0x83)
    return bytes(img)

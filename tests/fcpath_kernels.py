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
                image_paddr: int = KERNEL_PADDR, start32: int = START32) -> bytes:
    phnum = 1 + (1 if pvh_note is not None else 0) + extra_phdrs
    img = bytearray(image_size)
    img[0x1000:0x1000 + len(code)] = code
    struct.pack_into("<Q", img, 0x800, start32)
    note_off = 0x900
    if pvh_note is not None:
        img[note_off:note_off + 24] = struct.pack("<III4sQ", 4, 8, 18, b"Xen\0", pvh_note)
    # section contents after the image
    strtab = b"\0start32\0start64\0ident_pt_l4\0"
    shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0"
    syms = b"\0" * 24
    if symbols:
        for name_off, value in ((1, KERNEL_VADDR + 0x1000), (9, KERNEL_VADDR + 0x1010),
                                (17, KERNEL_VADDR + 0x2000)):
            syms += struct.pack("<IBBHQQ", name_off, 0x12, 0, 1, value, 0)
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

"""Hand-built kernels that do NOT keep OSv's contract, for the any-kernel qemu-fc tests.

Written with ``struct`` from the ELF and Linux boot-protocol layouts (nothing computed by
osvkit):

* :func:`linux_like_elf`: an ELF64 x86-64 laid out like a Linux ``vmlinux`` -- the ELF header
  is not loaded, one PT_LOAD from file offset 0x1000 at a high virtual address and physical
  ``paddr`` (default 16 MiB), optional PT_NOTE segments (``notes``: lists of
  ``(name, type, desc)``) that are not loaded either;
* :func:`bzimage`: a bzImage with a setup header (boot protocol 2.15 by default), ``setup_sects``
  sectors of setup code and ``payload`` as the protected-mode kernel.
"""

from __future__ import annotations

import struct

LINUX_PADDR = 0x1000000
LINUX_VADDR = 0xFFFFFFFF81000000
SEG_OFFSET = 0x1000


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + bytes(-len(b) % 4)   # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def pvh_note(entry: int) -> tuple[bytes, int, bytes]:
    return (b"Xen\0", 18, struct.pack("<I", entry))


def linux_like_elf(code: bytes, *, paddr: int = LINUX_PADDR, entry: int | None = None,
                   size: int = 0x3000, bss: int = 0x1000, notes=(), machine: int = 62,
                   elfclass: int = 2, data: int = 1, phentsize: int = 56, phoff: int = 0x40,
                   extra_loads=()) -> bytes:
    """``extra_loads``: more PT_LOADs ``(paddr, filesz, memsz)`` with zero-filled contents."""
    img = bytearray(size)
    img[:len(code)] = code
    note_blobs = [b"".join(note(*n) for n in seg) for seg in notes]
    body = bytearray(SEG_OFFSET) + img
    extra_off = []
    for _p, filesz, _m in extra_loads:
        extra_off.append(len(body))
        body += bytes(filesz)
    note_off = []
    for blob in note_blobs:
        note_off.append(len(body))
        body += blob
    phnum = 1 + len(extra_loads) + len(note_blobs)
    body[0:64] = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", elfclass, data, 1, 0, 0,
                             bytes(7), 2, machine, 1, paddr if entry is None else entry, phoff,
                             0, 0, 64, phentsize, phnum, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 7, SEG_OFFSET, LINUX_VADDR, paddr, size, size + bss,
                     0x200000)
    for (p, filesz, memsz), off in zip(extra_loads, extra_off):
        ph += struct.pack("<IIQQQQQQ", 1, 6, off, p, p, filesz, memsz, 0x1000)
    for blob, off in zip(note_blobs, note_off):
        ph += struct.pack("<IIQQQQQQ", 4, 4, off, 0, 0, len(blob), len(blob), 4)
    at = phoff if phoff >= 64 else 64
    body[at:at + len(ph)] = ph
    return bytes(body)


def bzimage(payload: bytes, *, setup_sects: int = 1, version: int = 0x020F,
            loadflags: int = 0x1, xloadflags: int = 0x1, code32_start: int = 0x100000,
            kernel_alignment: int = 0x200000, init_size: int = 0x400000) -> bytes:
    """The setup header fields at their boot_params offsets (Linux boot protocol)."""
    setup = bytearray(((setup_sects or 4) + 1) * 512)
    setup[0x1F1] = setup_sects
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    struct.pack_into("<H", setup, 0x200, 0x66EB)                  # jump
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, code32_start)
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = 1                                                # relocatable_kernel
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, 2047)                      # cmdline_size (the image's)
    struct.pack_into("<I", setup, 0x260, init_size)
    return bytes(setup) + payload

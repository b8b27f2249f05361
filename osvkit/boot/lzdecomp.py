"""osvkit's 32-bit FastLZ decompressor and the payload it heads.

boot16 loads the *payload* from LBA 128 to ``LZ_BLOB_ADDR`` (1 MiB) and calls its first byte
in 32-bit flat protected mode (paging off, ESP below 0x7C00).  The payload is::

    0x00  2   EB 1E            jmp to the code at 0x20
    0x02  2   0
    0x04  8   b"osvkitLZ"       magic
    0x0C  4   version (1)
    0x10  4   blob_offset       offset of the lz blob in the payload (<= 0x3000)
    0x14  4   blob_size
    0x18  4   kernel_size       uncompressed size
    0x1C  4   code_size
    0x20  ..  code; zeros up to blob_offset
    blob_offset  the kernel in OSv's lzloader segment format (osvkit.image.lzloader)

The code restores the kernel to ``KERNEL_BASE_ADDR`` (2 MiB) and returns.  Like OSv's
``lzloader.cc`` it copies the segment table away first (to ``LZ_TABLE_COPY_ADDR``, inside the
bounce buffer, which is free by then) and walks the segments **last to first**: segment *i*
goes to ``0x200000 + i MiB``; its input starts at most ``blob_offset + 4 + i MiB`` above
``0x100000``.  A compressed segment is at most ``1 MiB - 4 - 0x3000`` bytes and every earlier one
at most 1 MiB, so with ``blob_offset <= 0x3000`` a compressed segment's input lies wholly below
its output, and the inputs of segments ``< i`` lie below segment *i*'s output: nothing unread is
ever overwritten.  A raw segment may overlap its output by up to ``blob_offset + 4`` bytes with
the output above, so it is copied backwards (``std; rep movsb/movsl``).  This holds for any kernel
size (tested with 40 MiB).

The FastLZ loop decodes levels 1 and 2 (level from the top 3 bits of byte 0; level 2's
255-extended lengths and far-distance escape are rare paths, the hot path does not test the
level).  Under QEMU TCG every iteration of a ``rep`` string instruction is a separate
translation-block execution, so a per-byte copy costs far more than straight-line code; the
copies are therefore:

* fast path, while the output pointer is at least 32 bytes before the segment's end
  (``LZ_OP_LIMIT_ADDR``): a literal run (at most 32 bytes) or a match of at most 32 bytes at
  distance >= 4 is copied with 8 unrolled ``movsl`` (32 bytes; the bytes past the token's end
  are overwritten by the next tokens), and a run of one byte (distance 1) with 8 ``stosl`` of
  the byte replicated.  An overlapping match is exact this way because every dword read lies
  at least 4 bytes behind the write pointer, i.e. in bytes already written;
* slow path (near a segment's end, longer matches): ``rep movsb`` for literals, ``rep movsl``
  + ``rep movsb`` for matches at distance >= 4, ``rep stosl`` + ``rep stosb`` for distance 1,
  and ``rep movsb`` (the byte loop, exact for overlaps) for distances 2 and 3.

For the 6 MiB conformance kernel this takes decompression under TCG from about 1.6e9 TSC ticks
(all-``rep`` copies) to about 1e8 (see ``bench/bios_boot.py``).
"""

from __future__ import annotations

from functools import lru_cache

from .. import layout
from ..asm import assemble
from ..errors import FormatError
from ..structs import base as schema
from ..structs.lzdecomp import (HEADER_SIZE, PAYLOAD_MAGIC, PAYLOAD_OFFSETS, PAYLOAD_VERSION,
                                PayloadHeader)
from ..structs.lzloader import LZ_ENTRY_SIZE, LZ_HEADER_SIZE, LzSegmentEntry

BLOB_ALIGN = 0x40
LZ_TABLE_COPY_ADDR = layout.LZ_TABLE_COPY_ADDR
LZ_OP_LIMIT_ADDR = layout.LZ_OP_LIMIT_ADDR
MAX_SEGMENTS = (layout.BOUNCE_BUFFER_END - LZ_TABLE_COPY_ADDR) // LZ_ENTRY_SIZE

_HDR = layout.LZ_BLOB_ADDR
_SSIZE = schema.field_offsets(LzSegmentEntry)["ssize"]


def _code() -> str:
    # Every number in hex: Keystone 0.9.2 in AT&T mode reads "20" as 0x20.
    MOVSL8 = "\n".join(["    movsl"] * 8)
    STOSL8 = "\n".join(["    stosl"] * 8)
    return f"""
    pushal
    cld
    movl {_HDR + PAYLOAD_OFFSETS["blob_offset"]:#x}, %ebp
    addl ${_HDR:#x}, %ebp
    movl (%ebp), %esi
    addl %ebp, %esi
    lodsl
    movl %eax, %ecx
    shll $0x1, %ecx
    movl ${LZ_TABLE_COPY_ADDR:#x}, %edi
    rep movsl
    movl %eax, %ecx
    leal {LZ_HEADER_SIZE:#x}(%ebp), %ebx
    movl ${LZ_TABLE_COPY_ADDR:#x}, %esi
sum_loop:
    addl {_SSIZE:#x}(%esi), %ebx
    addl ${LZ_ENTRY_SIZE:#x}, %esi
    loop sum_loop
    leal -0x1(%eax), %ecx
    shll $0x14, %ecx
    addl ${layout.KERNEL_BASE_ADDR:#x}, %ecx
seg_loop:
    subl ${LZ_ENTRY_SIZE:#x}, %esi
    movl (%esi), %eax
    movl {_SSIZE:#x}(%esi), %edx
    subl %edx, %ebx
    pushl %esi
    pushl %ebx
    pushl %ecx
    testl %eax, %eax
    jz seg_next
    cmpl %eax, %edx
    jb seg_compressed
    std
    leal -0x1(%ebx,%eax), %esi
    leal -0x1(%ecx,%eax), %edi
    movl %eax, %ecx
    andl $0x3, %ecx
    rep movsb
    subl $0x3, %esi
    subl $0x3, %edi
    movl %eax, %ecx
    shrl $0x2, %ecx
    rep movsl
    cld
    jmp seg_next
seg_compressed:
    leal -0x20(%ecx,%eax), %edi
    movl %edi, {LZ_OP_LIMIT_ADDR:#x}
    movl %ebx, %esi
    movl %ecx, %edi
    addl %ebx, %edx
    call fastlz
seg_next:
    popl %ecx
    popl %ebx
    popl %esi
    subl $0x100000, %ecx
    cmpl ${LZ_TABLE_COPY_ADDR:#x}, %esi
    ja seg_loop
    popal
    ret

fastlz:
    movzbl (%esi), %eax
    incl %esi
    movl %eax, %ebp
    shrl $0x5, %ebp
    andl $0x1f, %eax
literal:
    leal 0x1(%eax), %ecx
    cmpl {LZ_OP_LIMIT_ADDR:#x}, %edi
    ja literal_slow
{MOVSL8}
    leal -0x20(%esi,%ecx), %esi
    leal -0x20(%edi,%ecx), %edi
    cmpl %edx, %esi
    jae fastlz_done
token:
    movzbl (%esi), %eax
    incl %esi
    cmpl $0x20, %eax
    jb literal
    movl %eax, %ecx
    shrl $0x5, %ecx
    andl $0x1f, %eax
    shll $0x8, %eax
    cmpl $0x7, %ecx
    je long_len
have_len:
    movzbl (%esi), %ebx
    incl %esi
    addl %ebx, %eax
    cmpl $0x1fff, %eax
    je far_distance
have_distance:
    addl $0x2, %ecx
    cmpl $0x20, %ecx
    ja match_slow
    cmpl {LZ_OP_LIMIT_ADDR:#x}, %edi
    ja match_slow
    cmpl $0x3, %eax
    jb match_short_distance
    movl %esi, %ebx
    movl %edi, %esi
    subl %eax, %esi
    decl %esi
{MOVSL8}
    movl %ebx, %esi
    leal -0x20(%edi,%ecx), %edi
    cmpl %edx, %esi
    jb token
    ret
match_short_distance:
    testl %eax, %eax
    jnz match_slow
    movzbl -0x1(%edi), %eax
    imull $0x1010101, %eax, %eax
{STOSL8}
    leal -0x20(%edi,%ecx), %edi
    cmpl %edx, %esi
    jb token
    ret
literal_slow:
    rep movsb
    cmpl %edx, %esi
    jb token
    ret
match_slow:
    testl %eax, %eax
    jz fill
    pushl %esi
    movl %edi, %esi
    subl %eax, %esi
    decl %esi
    cmpl $0x3, %eax
    jb short_copy
    movl %ecx, %ebx
    shrl $0x2, %ecx
    rep movsl
    movl %ebx, %ecx
    andl $0x3, %ecx
short_copy:
    rep movsb
    popl %esi
    cmpl %edx, %esi
    jb token
    ret
fill:
    movzbl -0x1(%edi), %eax
    imull $0x1010101, %eax, %eax
    movl %ecx, %ebx
    shrl $0x2, %ecx
    rep stosl
    movl %ebx, %ecx
    andl $0x3, %ecx
    rep stosb
    cmpl %edx, %esi
    jb token
fastlz_done:
    ret
long_len:
    movzbl (%esi), %ebx
    incl %esi
    addl %ebx, %ecx
    testl %ebp, %ebp
    jz have_len
    cmpl $0xff, %ebx
    je long_len
    jmp have_len
far_distance:
    testl %ebp, %ebp
    jz have_distance
    movzwl (%esi), %eax
    xchgb %al, %ah
    addl $0x2, %esi
    addl $0x1fff, %eax
    jmp have_distance
"""


@lru_cache(maxsize=1)
def decompressor_code() -> bytes:
    """The 32-bit decompressor, assembled to run at ``LZ_BLOB_ADDR + HEADER_SIZE``."""
    return assemble(_code(), bits=32, base=layout.LZ_BLOB_ADDR + HEADER_SIZE)


def build_payload(blob: bytes, kernel_size: int) -> bytes:
    """Header + decompressor + ``blob`` (the lzloader-format kernel)."""
    code = decompressor_code()
    blob_offset = -(-(HEADER_SIZE + len(code)) // BLOB_ALIGN) * BLOB_ALIGN
    assert blob_offset <= 0x3000
    header = schema.build(PayloadHeader, dict(version=PAYLOAD_VERSION, blob_offset=blob_offset,
                                              blob_size=len(blob), kernel_size=kernel_size,
                                              code_size=len(code)), what="payload header")
    out = bytearray(header + code)
    out += bytes(blob_offset - len(out))
    out += blob
    return bytes(out)


def is_payload(data: bytes) -> bool:
    """True when ``data`` carries the payload magic (its header may still be damaged)."""
    at = PAYLOAD_OFFSETS["magic"]
    return len(data) >= HEADER_SIZE and data[at:at + len(PAYLOAD_MAGIC)] == PAYLOAD_MAGIC


def parse_payload(data: bytes, *, path: str | None = None):
    """Parse the payload header; return (header container, blob bytes)."""
    if not is_payload(data):
        raise FormatError("no osvkit decompressor header at LBA 128", path=path,
                          expected=f"magic {PAYLOAD_MAGIC!r} at offset 4")
    hdr = schema.parse(PayloadHeader, data, what="osvkit payload header", path=path)
    end = hdr.blob_offset + hdr.blob_size
    if end > len(data):
        raise FormatError(f"the lz blob ends at payload offset {end}, past the "
                          f"{len(data)} bytes loaded", path=path,
                          expected="a complete payload")
    return hdr, data[hdr.blob_offset:end]

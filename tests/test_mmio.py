"""virtio_mmio.device= entries: exact strings from Firecracker/QEMU, OSv's and Linux's
grammars, OSv's find/strip semantics."""

from __future__ import annotations

import ctypes
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit.cmdline.mmio import (MmioDevice, decode, encode, find_devices, format_size,
                                 strip_devices)
from osvkit.errors import CmdlineError

GiB = 1 << 30


# --- encode: exact values ------------------------------------------------------------
@pytest.mark.parametrize("dev, osv_safe, text", [
    # Firecracker HEAD's first device
    (MmioDevice(0x1000, 0xC0001000, 5), True, "virtio_mmio.device=4K@0xc0001000:5"),
    # Firecracker <= v1.12
    (MmioDevice(0x1000, 0xD0000000, 5), False, "virtio_mmio.device=4K@0xd0000000:5"),
    # linux-loader's doc example, with an id
    (MmioDevice(4096, 0x1000, 5, 42), False, "virtio_mmio.device=4K@0x1000:5:42"),
    # QEMU microvm's 512-byte transport: no suffix, decimal bytes
    (MmioDevice(512, 0xFEB00000, 5), True, "virtio_mmio.device=512@0xfeb00000:5"),
    # 1 GiB: linux-loader writes G, OSv cannot read it, OSv-safe writes M
    (MmioDevice(GiB, 0x1_0000_0000, 7), False, "virtio_mmio.device=1G@0x100000000:7"),
    (MmioDevice(GiB, 0x1_0000_0000, 7), True, "virtio_mmio.device=1024M@0x100000000:7"),
    (MmioDevice(3 * GiB, 0, 0), True, "virtio_mmio.device=3072M@0x0:0"),
    (MmioDevice(0x200000, 0xABCDEF, 23), True, "virtio_mmio.device=2M@0xabcdef:23"),
    (MmioDevice(1536, 0x10, 5), False, "virtio_mmio.device=1536@0x10:5"),
    (MmioDevice(3 * 1024, 0x10, 5), True, "virtio_mmio.device=3K@0x10:5"),
])
def test_encode_exact(dev, osv_safe, text):
    assert encode(dev, osv_safe=osv_safe) == text


@pytest.mark.parametrize("dev, text", [
    # linux-loader's own add_virtio_mmio_device cases (one per suffix), Linux mode
    (MmioDevice(1, 0, 1), "virtio_mmio.device=1@0x0:1"),
    (MmioDevice(2 << 10, 0x100, 2), "virtio_mmio.device=2K@0x100:2"),
    (MmioDevice(3 << 20, 0x1000, 3), "virtio_mmio.device=3M@0x1000:3"),
    (MmioDevice(4 << 30, 0x1_0000, 4, 42), "virtio_mmio.device=4G@0x10000:4:42"),
])
def test_encode_linux_loader_suffixes(dev, text):
    assert encode(dev, osv_safe=False) == text


def test_format_size_never_writes_g_in_osv_mode():
    assert format_size(GiB) == "1024M"
    assert format_size(GiB, osv_safe=False) == "1G"
    assert format_size(1 << 40, osv_safe=False) == "1024G"
    assert format_size(1 << 40) == "1048576M"
    assert format_size(1023) == "1023"


def test_encode_refuses_size_zero_and_device_ranges():
    with pytest.raises(CmdlineError) as e:
        encode(MmioDevice(0, 0x1000, 5))
    assert e.value.reason == CmdlineError.MMIO and "size 0" in str(e.value)
    for kw in ({"size": -1}, {"base": 1 << 64}, {"irq": 1 << 32}, {"id": -1}, {"irq": True}):
        args = {"size": 4096, "base": 0, "irq": 5, **kw}
        with pytest.raises(CmdlineError) as e:
            MmioDevice(**args)
        assert e.value.reason == CmdlineError.MMIO


# --- decode: OSv grammar ---------------------------------------------------------------
@pytest.mark.parametrize("text, dev", [
    ("virtio_mmio.device=4K@0xc0001000:5", MmioDevice(4096, 0xC0001000, 5)),
    ("virtio_mmio.device=512@0xfeb00000:5", MmioDevice(512, 0xFEB00000, 5)),
    (" virtio_mmio.device=512@0xfeb00000:5", MmioDevice(512, 0xFEB00000, 5)),
    ("4k@0x1000:5", MmioDevice(4096, 0x1000, 5)),
    ("2m@4096:9", MmioDevice(2 << 20, 4096, 9)),             # decimal base
    ("1M@010:9", MmioDevice(1 << 20, 8, 9)),                  # leading 0: octal (%lli)
    ("1024M@0X10:9:3", MmioDevice(GiB, 16, 9, 3)),            # :id after the irq
    ("4K@0x1000:5junk", MmioDevice(4096, 0x1000, 5, None)),   # ignored by OSv
])
def test_decode_osv_exact(text, dev):
    assert decode(text, "osv") == dev


@pytest.mark.parametrize("text, words", [
    ("virtio_mmio.device=1G@0x1000:5", "'G' between the size and '@'"),   # OSv has no G
    ("4X@0x1000:5", "'X' between the size and '@'"),
    ("@0x1000:5", "no decimal size"),
    ("0x1000@0x1000:5", "'x1000' between"),   # %ld reads "0", then junk before '@'
    ("4K0x1000:5", "no '@'"),
    ("4K@:5", "no base after '@'"),
    ("4K@0x:5", "no base after '@'"),
    ("4K@08:5", "no ':' after the base"),      # 0 octal, then '8'
    ("4K@0x1000", "no ':' after the base"),
    ("4K@0x1000:", "no decimal irq"),
    ("4K@0x1000:x", "no decimal irq"),
    ("-4K@0x1000:5", "signed size"),
    ("4K@0x1000:-5", "signed irq"),
    ("4K@0x1000:4294967296", "does not fit 32 bits"),
    ("4K@0x10000000000000000:5", "base in"),
    ("0@0x1000:5", "size 0"),
    ("4K@ 0x1000:5", "whitespace inside"),
    ("4K@0x1000:5\0", "NUL"),
])
def test_decode_osv_errors(text, words):
    with pytest.raises(CmdlineError) as e:
        decode(text, "osv")
    assert words in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.reason in (CmdlineError.MMIO, CmdlineError.NUL)


# --- decode: Linux grammar -------------------------------------------------------------
@pytest.mark.parametrize("text, dev", [
    ("virtio_mmio.device=4K@0xc0001000:5", MmioDevice(4096, 0xC0001000, 5)),
    ("virtio_mmio.device=1G@0x100000000:7", MmioDevice(GiB, 1 << 32, 7)),
    ("virtio-mmio.device=1g@0x100000000:7", MmioDevice(GiB, 1 << 32, 7)),  # '-' == '_'
    ("0x100@0x100b0000:48", MmioDevice(0x100, 0x100B0000, 48)),  # Linux's doc example
    ("1T@0:1:2", MmioDevice(1 << 40, 0, 1, 2)),
    ("010@0:1", MmioDevice(8, 0, 1)),                            # memparse base 0: octal
])
def test_decode_linux_exact(text, dev):
    assert decode(text, "linux") == dev


@pytest.mark.parametrize("text, words", [
    ("4K@0x1000:0", "Linux refuses irq 0"),
    ("4K@0x1000:5:7:8", "bad irq/id"),
    ("4K@0x1000:5x", "bad irq/id"),
    ("4KB@0x1000:5", "'B' after the size"),
    ("@0x1000:5", "no size"),
    ("4K@-1:5", "signed base"),
    ("4K@0x1000:5 x", "whitespace"),
])
def test_decode_linux_errors(text, words):
    with pytest.raises(CmdlineError) as e:
        decode(text, "linux")
    assert words in str(e.value) and e.value.reason == CmdlineError.MMIO


def test_decode_unknown_grammar():
    with pytest.raises(CmdlineError, match="unknown virtio-mmio grammar 'bsd'"):
        decode("4K@0:5", "bsd")


# --- find / strip: OSv's exact behaviour -----------------------------------------------
def test_strip_qemu_microvm_append():
    # QEMU microvm appends " virtio_mmio.device=512@0x%lx:%ld" per transport (6.1)
    line = "--nopci /hello virtio_mmio.device=512@0xfeb00000:5 virtio_mmio.device=512@0xfeb00200:6"
    assert strip_devices(line) == "--nopci /hello  "
    assert [e.device for e in find_devices(line)] == [MmioDevice(512, 0xFEB00000, 5),
                                                     MmioDevice(512, 0xFEB00200, 6)]


def test_strip_keeps_separator_whitespace_and_tail():
    line = "a virtio_mmio.device=4K@0xc0001000:5\tb"
    assert strip_devices(line) == "a \tb"
    assert strip_devices("virtio_mmio.device=4K@0xc0001000:5") == ""


def test_strip_prefix_anywhere_without_word_boundary():
    line = "--x=virtio_mmio.device=4K@0x1000:5:77 /app"
    entries = find_devices(line)
    assert [(e.text, e.ignored) for e in entries] == [("virtio_mmio.device=4K@0x1000:5:77", ":77")]
    assert entries[0].device == MmioDevice(4096, 0x1000, 5, 77)
    assert strip_devices(line) == "--x= /app"


def test_osv_stops_at_first_parse_failure():
    # the first entry has no irq: OSv stops, the second (valid) one is never looked at
    line = "virtio_mmio.device=4K@0x1000 virtio_mmio.device=4K@0x2000:6 /app"
    assert find_devices(line) == []
    assert strip_devices(line) == line
    # a valid entry before the failing one is still taken
    line = "virtio_mmio.device=4K@0x2000:6 virtio_mmio.device=bad /app"
    assert [e.device.base for e in find_devices(line)] == [0x2000]
    assert strip_devices(line) == " virtio_mmio.device=bad /app"


def test_osv_quirks_modelled_exactly():
    # '@' is searched past whitespace; the multiplier is the char before that '@'
    line = "virtio_mmio.device=4 xK@0x1000:5 tail"
    (entry,) = find_devices(line)
    assert entry.device == MmioDevice(4096, 0x1000, 5)
    assert entry.text == "virtio_mmio.device=4 xK@0x1000:5"
    assert strip_devices(line) == " tail"
    # 'G' is not a multiplier: a 1-byte device
    assert find_devices("virtio_mmio.device=1G@0x1000:5")[0].device.size == 1
    # whitespace after '@' is skipped by %lli, but the entry ends at it
    line = "virtio_mmio.device=4K@ 0x1000:5 x"
    assert find_devices(line)[0].device == MmioDevice(4096, 0x1000, 5)
    assert strip_devices(line) == " 0x1000:5 x"
    # musl: '-' negates modulo 2**64, %u keeps 32 bits, overflow clamps
    assert find_devices("virtio_mmio.device=4K@-1:-1")[0].device == \
        MmioDevice(4096, (1 << 64) - 1, 0xFFFFFFFF)
    assert find_devices("virtio_mmio.device=4K@0x1000:4294967301")[0].device.irq == 5
    assert find_devices("virtio_mmio.device=1@99999999999999999999:5")[0].device.base == \
        (1 << 64) - 1


def test_find_linux_tokens_until_double_dash():
    line = ("console=ttyS0 virtio_mmio.device=4K@0xc0001000:5 xvirtio_mmio.device=4K@0x1:5 "
            "virtio_mmio.device=4K@0xc0002000:0 virtio_mmio.device=1G@0x0:6 -- "
            "virtio_mmio.device=4K@0xc0003000:7")
    assert [e.device for e in find_devices(line, "linux")] == [
        MmioDevice(4096, 0xC0001000, 5), MmioDevice(GiB, 0, 6)]


# --- round trips -----------------------------------------------------------------------
devices = st.builds(MmioDevice,
                    size=st.integers(1, (1 << 64) - 1),
                    base=st.integers(0, (1 << 64) - 1),
                    irq=st.integers(0, (1 << 32) - 1),
                    id=st.none() | st.integers(0, (1 << 31) - 1))
sized = st.one_of(st.integers(1, 1 << 20), st.integers(1, 1 << 34).map(lambda n: n << 10),
                  st.integers(1, 1 << 24).map(lambda n: n << 30))


@given(devices, sized)
def test_roundtrip_osv_safe(dev, size):
    for d in (dev, MmioDevice(size, dev.base, dev.irq, dev.id)):
        text = encode(d)
        assert "G@" not in text
        assert decode(text, "osv") == d
        assert find_devices(text) == find_devices(" " + text + " ")
        assert strip_devices(f"--a {text} /b") == "--a  /b"
        if d.irq:
            assert decode(text, "linux") == d


@given(devices, sized)
def test_roundtrip_linux(dev, size):
    for d in (dev, MmioDevice(size, dev.base, dev.irq, dev.id)):
        if d.irq == 0:
            continue
        assert decode(encode(d, osv_safe=False), "linux") == d


# --- the C scanf model, checked against the C library's sscanf -----------------------------
# OSv uses musl's sscanf; here the host's (glibc) is the reference.  The two agree except
# for "0x" without a hex digit (musl: no match, glibc: 0) and overflow (musl clamps to
# 2**64-1 for every conversion), so those inputs are left out.
_libc = ctypes.CDLL(None)
_scanf_text = st.text(alphabet="0123456789abcdefxX+- \t:@8", max_size=14).filter(
    lambda s: not re.search(r"0[xX](?![0-9a-fA-F])", s) and not re.search(r"[0-9a-fA-F]{15}", s))


@settings(max_examples=3000, deadline=None)
@given(_scanf_text)
def test_osv_scanner_matches_c_sscanf(text):
    from osvkit.cmdline.mmio import _musl_int
    s = "@" + text
    base, irq = ctypes.c_longlong(0), ctypes.c_uint(0)
    n = _libc.sscanf(s.encode(), b"@%lli:%u", ctypes.byref(base), ctypes.byref(irq))
    b = _musl_int(s, 1, 0)
    ok = b is not None and b.end < len(s) and s[b.end] == ":"
    q = _musl_int(s, b.end + 1, 10) if ok else None
    mine = (b.value, q.value & 0xFFFFFFFF) if q is not None else None
    assert mine == ((base.value & (2**64 - 1), irq.value) if n == 2 else None)
    size = ctypes.c_long(0)
    n = _libc.sscanf(text.encode(), b"%ld", ctypes.byref(size))
    z = _musl_int(text, 0, 10)
    assert (z.value if z else None) == ((size.value & (2**64 - 1)) if n == 1 else None)

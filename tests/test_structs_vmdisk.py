"""osvkit.structs.vmdisk: VMDK sparse and VDI headers against qemu-img's output, gzip trailer."""

from __future__ import annotations

import gzip
import subprocess

import pytest

from osvkit.structs import base, vmdisk


def test_offsets():
    assert base.field_offsets(vmdisk.VmdkSparseHeader)["descriptor_offset"] == 28
    o = vmdisk.VDI_OFFSETS
    assert (o["signature"], o["uuid_create"], o["uuid_modify"], o["disk_size"]) == \
        (0x40, 0x188, 0x198, 0x170)
    assert vmdisk.VdiHeader.sizeof() == 0x1C8


@pytest.mark.parametrize("fmt", ["vmdk", "vdi"])
def test_parses_what_qemu_img_makes(qemu_img, tmp_path, fmt):
    img = tmp_path / f"d.{fmt}"
    subprocess.run([qemu_img, "create", "-q", "-f", fmt, str(img), "3M"], check=True)
    head = img.read_bytes()[:0x200]
    if fmt == "vmdk":
        h = base.parse(vmdisk.VmdkSparseHeader, head, what="VMDK header")
        assert h.capacity == 3 * 2048 and h.descriptor_offset >= 1 and h.descriptor_size >= 1
    else:
        h = base.parse(vmdisk.VdiHeader, head, what="VDI header")
        assert h.disk_size == 3 << 20 and h.sector_size == 512 and any(h.uuid_create)
    schema = vmdisk.VmdkSparseHeader if fmt == "vmdk" else vmdisk.VdiHeader
    assert base.build(schema, h) == head[:schema.sizeof()]


def test_gzip_trailer_matches_the_gzip_module():
    data = b"osvkit" * 1000
    blob = gzip.compress(data, mtime=0)
    t = base.parse(vmdisk.GzipTrailer, blob, what="gzip trailer", offset=len(blob) - 8)
    assert (t.isize, base.build(vmdisk.GzipTrailer, t)) == (len(data), blob[-8:])

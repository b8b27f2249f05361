"""osvkit.structs.qcow2: the header as QEMU's qcow2 specification lays it out, checked against
exact bytes and against images qemu-img makes."""

from __future__ import annotations

import subprocess

import pytest

from osvkit.errors import FormatError
from osvkit.structs import base, qcow2

V3 = dict(version=3, cluster_bits=16, size=1 << 30, l1_size=2, l1_table_offset=0x30000,
          refcount_table_offset=0x10000, refcount_table_clusters=1,
          v3=dict(incompatible_features=0, compatible_features=qcow2.COMPAT_LAZY_REFCOUNTS,
                  autoclear_features=0, refcount_order=4, header_length=112),
          compression_type=qcow2.COMPRESSION_ZLIB)


def test_offsets_are_the_spec_s():
    o = qcow2.QCOW2_HEADER_OFFSETS
    assert (o["version"], o["backing_file_offset"], o["backing_file_size"], o["cluster_bits"],
            o["size"], o["crypt_method"], o["l1_size"], o["l1_table_offset"],
            o["refcount_table_offset"], o["refcount_table_clusters"], o["nb_snapshots"],
            o["snapshots_offset"], o["incompatible_features"], o["compatible_features"],
            o["autoclear_features"], o["refcount_order"], o["header_length"],
            o["compression_type"]) == (4, 8, 16, 20, 24, 32, 36, 40, 48, 56, 60, 64, 72, 80,
                                       88, 96, 100, 104)
    assert (qcow2.QCOW2_V2_HEADER_SIZE, qcow2.QCOW2_V3_HEADER_SIZE) == (72, 104)


def test_v3_header_exact_bytes_and_round_trip():
    data = base.build(qcow2.Qcow2HeaderFull, V3)
    be = lambda v, n: v.to_bytes(n, "big")  # noqa: E731
    assert data == (b"QFI\xfb" + be(3, 4) + be(0, 8) + be(0, 4) + be(16, 4) + be(1 << 30, 8)
                    + be(0, 4) + be(2, 4) + be(0x30000, 8) + be(0x10000, 8) + be(1, 4)
                    + be(0, 4) + be(0, 8) + be(0, 8) + be(1, 8) + be(0, 8) + be(4, 4)
                    + be(112, 4) + b"\0")
    parsed = base.parse(qcow2.Qcow2HeaderFull, data, what="qcow2 header")
    assert parsed.v3.header_length == 112 and parsed.compression_type == 0
    assert base.build(qcow2.Qcow2HeaderFull, parsed) == data
    common = base.parse(qcow2.Qcow2Header, data, what="qcow2 header")
    assert common.l1_table_offset == 0x30000
    v3 = base.parse(qcow2.Qcow2HeaderV3, data, what="qcow2 v3 header",
                    offset=qcow2.QCOW2_V2_HEADER_SIZE)
    assert v3.compatible_features == 1


def test_v2_header_has_no_v3_part():
    data = base.build(qcow2.Qcow2HeaderFull, dict(V3, version=2, v3=None, compression_type=None))
    assert len(data) == 72
    assert base.parse(qcow2.Qcow2HeaderFull, data + bytes(40), what="h").v3 is None


def test_bad_magic_is_one_line():
    data = bytearray(base.build(qcow2.Qcow2Header, V3))
    data[0] = ord("X")
    with pytest.raises(FormatError) as exc:
        base.parse(qcow2.Qcow2Header, data, what="qcow2 header", path="d.qcow2")
    assert str(exc.value) == ("d.qcow2: qcow2 header at 0x0: field magic (0x0) is b'XFI\\xfb', "
                              "expected b'QFI\\xfb'")


def test_extension_and_feature_name_and_tables():
    b = base.build(qcow2.Qcow2ExtensionData, dict(type=qcow2.EXT_BACKING_FORMAT, data=b"raw"))
    assert b == bytes.fromhex("e2792aca 00000003") + b"raw" + bytes(5)
    assert base.build(qcow2.Qcow2ExtensionData,
                      base.parse(qcow2.Qcow2ExtensionData, b, what="ext")) == b
    f = base.build(qcow2.Qcow2FeatureName, dict(type=0, bit=0, name="dirty bit"))
    assert f == b"\0\0dirty bit" + bytes(37) and len(f) == 48
    t = base.build(qcow2.qcow2_table(2), [qcow2.OFLAG_COPIED | 0x50000, 0])
    assert t == bytes.fromhex("8000000000050000") + bytes(8)


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
def test_parses_what_qemu_img_makes(qemu_img, tmp_path, compat):
    img = tmp_path / "d.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-o", f"compat={compat}",
                    "-o", "cluster_size=65536", str(img), "100M"], check=True)
    data = img.read_bytes()
    h = base.parse(qcow2.Qcow2HeaderFull, data, what="qcow2 header")
    assert h.size == 100 << 20 and h.cluster_bits == 16 and h.crypt_method == 0
    assert h.l1_size == 1 and h.refcount_table_clusters >= 1
    if compat == "0.10":
        assert h.version == 2 and h.v3 is None
    else:
        assert h.version == 3 and h.v3.refcount_order == 4 and h.v3.header_length >= 104
        built = base.build(qcow2.Qcow2HeaderFull, h)
        assert len(built) >= 104 and data[:len(built)] == built
    rt = base.parse(qcow2.qcow2_table(1), data, what="refcount table",
                    offset=h.refcount_table_offset)
    assert rt[0] != 0 and rt[0] % (1 << h.cluster_bits) == 0

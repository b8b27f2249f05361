"""``osvkit decode`` as a real subprocess: output, JSON and one-line errors with status 65."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit.boot import bootinfo, firecracker as fc
from osvkit.boot.decode import KINDS, decode_bytes, decode_file, describe
from osvkit.cli._app import to_jsonable
from osvkit.errors import FormatError, MissingInputError, OsvkitError

from test_boot_mbr import osv_boot_sector


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    mem = bytearray(0x100000)                       # a Firecracker-like guest, from 0
    mem[0x1000:0x1000 + 121] = bootinfo.build_bootinfo(
        flags=0x200, cmdline=0x20000, mmap_length=96, mmap_addr=0x2000, boot_loader_name=0x1100)
    mem[0x1100:0x1111] = b"osvkit-vmlinux64\0"
    e820 = fc.firecracker_e820(128 << 20)
    mem[0x2000:0x2000 + 96] = bootinfo.build_osv_e820(e820)
    mem[0x6000:0x6038] = fc.firecracker_pvh_start_info(len(e820))
    mem[0x7000:0x8000] = fc.firecracker_boot_params(len("--nopci /hello"), e820)
    mem[0x20000:0x2000F] = b"--nopci /hello\0"
    table = fc.firecracker_mptable(2)
    mem[0x9FC00:0x9FC00 + len(table)] = table
    paths = {
        "dump": d / "mem.bin", "mbr": d / "mbr.bin", "mptable": d / "fc-mptable.bin",
        "empty": d / "empty.bin", "garbage": d / "garbage.bin", "qcow2": d / "disk.qcow2",
        "badsum": d / "badsum.bin",
    }
    paths["dump"].write_bytes(bytes(mem))
    paths["mbr"].write_bytes(osv_boot_sector() + bytes(1024))
    paths["mptable"].write_bytes(table)
    paths["empty"].write_bytes(b"")
    paths["garbage"].write_bytes(bytes((i * 37 + 11) & 0xFF for i in range(8192)))
    paths["qcow2"].write_bytes(b"QFI\xfb" + bytes(508))
    bad = bytearray(table)
    bad[16 + 44 + 20 + 1] = 9                       # second cpu's apicid, table checksum off
    paths["badsum"].write_bytes(bytes(bad))
    return paths


def test_mptable_scan_human(cli, files):
    r = cli("decode", "mptable", files["dump"])
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "MP floating pointer at 0x9fc00" in out and "signature: PCMP" in out
    assert "entries (30; 2 processors)" in out and "oemcount: 31" in out
    assert "processor apicid 1 apicver 0x14 cpuflag 0x1 (enabled)" in out
    assert "lintsrc NMI flags 0x0 bus 0 irq 0 -> lapic 0xff LINT1" in out


def test_mptable_json_with_offset_and_base(cli, files):
    r = cli("decode", "mptable", files["mptable"], "--offset", "0", "--base", "0x9fc00",
            "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)                        # stdout is only JSON
    assert list(d) == ["kind", "offset", "address", "found_by", "mpf", "header", "entries",
                       "cpus", "checksums", "checksums_ok", "problems", "notes",
                       "suggested_base"]
    assert d["kind"] == "mptable" and d["address"] == 0x9FC00 and d["cpus"] == 2
    assert d["header"]["oem"] == "FC      " and d["header"]["length"] == 308
    assert d["checksums"] == {"mpf": {"stored": 0x8B, "ok": True},
                              "table": {"stored": 0xF8, "ok": True}}


def test_mptable_bad_checksum_strict_and_lenient(cli, files):
    r = cli("decode", "mptable", files["badsum"], "--offset", "0", "--base", "0x9fc00")
    assert r.returncode == 65 and r.stdout == b""
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith(f"error: {files['badsum']}: MP configuration "
                                                   "table at 0x10: field checksum (0x17) is 0xf8")
    r = cli("decode", "mptable", files["badsum"], "--offset", "0", "--base", "0x9fc00",
            "--lenient", "--json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["checksums_ok"] is False and len(d["problems"]) == 1


def test_boot_params_in_a_dump(cli, files):
    r = cli("decode", "boot-params", files["dump"], "--offset", "0x7000", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["address"] == 0x7000 and d["cmdline"] == "--nopci /hello"
    assert d["hdr"]["cmd_line_ptr"] == 0x20000 and d["hdr"]["cmdline_size"] == 15
    assert d["e820"][2] == {"addr": 0xEEC00000, "size": 0x10000000, "type": 2}
    r = cli("decode", "boot-params", files["dump"], "--offset", "0x7000")
    out = r.stdout.decode()
    assert "cmd_line_ptr: 0x20000" in out and "type_of_loader: 0xff" in out


def test_bootinfo_and_pvh_in_a_dump(cli, files):
    r = cli("decode", "bootinfo", files["dump"], "--offset", "0x1000")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "boot loader: osvkit-vmlinux64" in out and "cmdline text: '--nopci /hello'" in out
    assert "e820 (4 records)" in out
    r = cli("decode", "pvh", files["dump"], "--offset", "0x6000", "--json")
    d = json.loads(r.stdout)
    assert d["fields"]["magic"] == 0x336EC578 and len(d["memmap"]) == 4


def test_mbr(cli, files):
    r = cli("decode", "mbr", files["mbr"], "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["count32"] == 14 and d["disk_signature"] == 0x004F5356
    assert d["partitions"][1]["start_chs_osv"] == [0, 65, 2]


@pytest.mark.parametrize("kind, key, offset, message", [
    ("mbr", "garbage", None, "MBR at 0x0: field boot_signature (0x1fe) is"),
    ("mbr", "qcow2", None, "is a qcow2 image, expected a raw disk image"),
    ("mbr", "mptable", None, "MBR at 0x0 is truncated: 324 bytes, expected 512 bytes"),
    ("boot-params", "garbage", None, "boot_params at 0x0: field hdr.boot_flag (0x1fe) is"),
    ("boot-params", "dump", "0x6000", "boot_params at 0x6000: field hdr.boot_flag (0x61fe)"),
    ("mptable", "garbage", None, "no MP floating pointer in the dump (0x0-0x2000)"),
    ("mptable", "mptable", None, "physptr (0x4) points at 0x9fc10, outside the data"),
    ("mptable", "dump", "0x9fc08", "MP floating pointer at 0x9fc08: field signature"),
    ("bootinfo", "garbage", None, "osv_multiboot_info at 0x0: field mmap_length (0x2c) is"),
    ("bootinfo", "mptable", "0x100", "osv_multiboot_info at 0x100 is truncated: 68 bytes"),
    ("pvh", "garbage", None, "hvm_start_info at 0x0: field magic (0x0) is 0x"),
    ("pvh", "dump", "0x7000", "hvm_start_info at 0x7000: field magic (0x7000) is 0x0, "
                              "expected 0x336ec578"),
    ("pvh", "empty", None, "file is empty, expected a pvh structure"),
    ("mptable", "dump", "0x200000", "MP floating pointer at 0x200000 is past the end"),
])
def test_bad_input_is_one_line_and_status_65(cli, files, kind, key, offset, message):
    args = ["decode", kind, files[key]] + (["--offset", offset] if offset else [])
    r = cli(*args)
    err = r.stderr.decode()
    assert r.returncode == 65, err
    assert r.stdout == b"" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {files[key]}: ") and message in err, err
    # the library raises the same one-line error
    with pytest.raises(FormatError) as exc:
        decode_file(kind, files[key], offset=int(offset, 0) if offset else None)
    assert message in str(exc.value)


def test_missing_file_and_bad_option(cli, files, tmp_path):
    r = cli("decode", "mbr", tmp_path / "nope.img")
    assert r.returncode == 66 and r.stderr.decode().strip() == \
        f"error: {tmp_path / 'nope.img'}: no such file"
    with pytest.raises(MissingInputError):
        decode_file("mbr", tmp_path / "nope.img")
    r = cli("decode", "mbr", files["mbr"], "--offset", "zz")
    assert r.returncode == 64 and b"is not a number" in r.stderr


def test_decode_from_a_pipe(files, tmp_path):
    # a FIFO (bash's <(...)) has st_size 0: it was reported as "file is empty"
    import os
    import threading
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = files["mbr"].read_bytes()
    writer = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
    writer.start()
    r = decode_file("mbr", fifo)
    writer.join(10)
    assert r.to_dict() == decode_file("mbr", files["mbr"]).to_dict()


VALID = [fc.firecracker_mptable(1), fc.firecracker_boot_params(3, fc.firecracker_e820(1 << 27)),
         fc.firecracker_pvh_start_info(4) + fc.firecracker_pvh_memmap(fc.firecracker_e820(1 << 27)),
         bootinfo.build_bootinfo(cmdline=0x79, mmap_addr=0x80, mmap_length=48) + bytes(7)
         + bootinfo.build_osv_e820([(0, 1, 1), (1, 2, 2)]), osv_boot_sector()]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), start=st.sampled_from(VALID) | st.binary(max_size=600),
       mutations=st.dictionaries(st.integers(0, 4095), st.integers(0, 255), max_size=4),
       offset=st.none() | st.integers(0, 700), base=st.sampled_from([0, 0x1000, 0x9FC00]),
       lenient=st.booleans())
def test_garbage_only_raises_osvkit_errors(kind, start, mutations, offset, base, lenient):
    data = bytearray(start)
    for i, v in mutations.items():
        if i < len(data):
            data[i] = v
    try:
        result = decode_bytes(kind, bytes(data), offset=offset, base=base, lenient=lenient)
    except OsvkitError as exc:
        assert "\n" not in str(exc)
        return
    json.dumps(to_jsonable(result.to_dict()))
    assert describe(result)

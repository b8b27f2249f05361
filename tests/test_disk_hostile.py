"""Hostile disk images: a qcow2 image names its own backing file, so whoever hands a user an
image chooses what every reader opens.  Each case here hung (a FIFO), read kernel state
(/proc), looped or gave a traceback before the disk layer's checks; each must now be a
one-line error with a sysexits status from every reading command, fast, with nothing
written.  Images are made by real ``qemu-img`` (``-u``: it does not open the backing file)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from osvkit.disk import open_disk
from osvkit.disk.backing import MAX_CHAIN
from osvkit.errors import FormatError, MissingInputError, OsvkitError

#: every command that reads an image, with what it needs after the image
READERS = [
    ("cmdline", "get", "{img}"),
    ("cmdline", "set", "{img}", "--", "--rootfs=rofs /x"),
    ("inspect", "{img}"),
    ("rofs", "ls", "-p", "1", "{img}"),
    ("rofs", "extract", "-p", "1", "{img}", "{out}"),
]
TIMEOUT = 60   # a hang is what is tested: fail instead of waiting forever


def qimg(qemu_img, *args):
    subprocess.run([qemu_img, *map(str, args)], check=True, capture_output=True)


def overlay(qemu_img, path: Path, backing: str, fmt: str = "raw", size: str = "2M") -> Path:
    """A qcow2 image naming ``backing`` without qemu-img opening it."""
    qimg(qemu_img, "create", "-q", "-f", "qcow2", "-b", backing, "-F", fmt, "-u", path, size)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_every_reader(cli, tmp_path, img: Path, status: int, words: str) -> None:
    before = sha(img)
    for argv in READERS:
        out = tmp_path / "extracted"
        args = [a.format(img=img, out=out) for a in argv]
        r = cli(*args, timeout=TIMEOUT)
        err = r.stderr.decode()
        assert r.returncode == status, (args, r.returncode, err)
        assert err.startswith(f"error: {img}: ") and err.count("\n") == 1, (args, err)
        assert words in err and "Traceback" not in err, (args, err)
        assert not out.exists(), args
    assert sha(img) == before


# --- backing files that are not regular files ---------------------------------------------
def test_fifo_backing_file(cli, qemu_img, tmp_path):
    os.mkfifo(tmp_path / "fifo.img")
    img = overlay(qemu_img, tmp_path / "o.qcow2", "fifo.img")
    check_every_reader(cli, tmp_path, img, 66,
                       f"backing file 'fifo.img' ({tmp_path}/fifo.img) is a FIFO (named pipe), "
                       "expected a regular file holding a raw or qcow2 image")


@pytest.mark.parametrize("kind", ["directory", "socket", "character device", "symlink to a FIFO"])
def test_non_regular_backing_files(qemu_img, tmp_path, kind):
    if kind == "directory":
        (tmp_path / "b").mkdir()
        name, words = "b", "is a directory"
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / "b"))
        name, words = "b", "is a socket"
    elif kind == "character device":
        name, words = "/dev/zero", "'/dev/zero' is a character device"
    else:
        os.mkfifo(tmp_path / "pipe")
        os.symlink("pipe", tmp_path / "b")
        name, words = "b", "is a FIFO"
    img = overlay(qemu_img, tmp_path / "o.qcow2", name)
    with pytest.raises(MissingInputError, match=words) as e:
        open_disk(img)
    assert e.value.exit_status == 66 and str(e.value).startswith(f"{img}: backing file ")


def test_backing_file_under_proc_is_refused(cli, qemu_img, tmp_path):
    # a regular file to stat, but kernel state: the environment would be read as disk data
    img = overlay(qemu_img, tmp_path / "o.qcow2", "/proc/self/environ")
    check_every_reader(cli, tmp_path, img, 66, "backing file '/proc/self/environ' is under /proc")
    os.symlink("/proc/self/environ", tmp_path / "env.img")      # also through a link
    img2 = overlay(qemu_img, tmp_path / "o2.qcow2", "env.img")
    with pytest.raises(MissingInputError, match="under /proc"):
        open_disk(img2)


@pytest.mark.parametrize("name", ["nbd://localhost:10809/x", "nbd:localhost:10809",
                                  'json:{"file.driver": "nbd"}', "https://example.com/a.img"])
def test_protocol_backing_names_are_refused(qemu_img, tmp_path, name):
    img = overlay(qemu_img, tmp_path / "o.qcow2", name)
    with pytest.raises(FormatError, match="is not a local file, expected a local raw or qcow2"):
        open_disk(img)


def test_a_missing_backing_file_names_where_it_was_looked_for(cli, qemu_img, tmp_path):
    img = overlay(qemu_img, tmp_path / "o.qcow2", "gone.img")
    check_every_reader(cli, tmp_path, img, 66, f"backing file 'gone.img' ({tmp_path}/gone.img) "
                       "not found")


# --- where a name resolves ------------------------------------------------------------------
def test_relative_names_resolve_against_the_image_directory(cli, qemu_img, tmp_path):
    imgdir, elsewhere = tmp_path / "images", tmp_path / "cwd"
    imgdir.mkdir()
    elsewhere.mkdir()
    (imgdir / "base.raw").write_bytes(b"\0" * 512 + b"from the image dir\0" + bytes(4096))
    (elsewhere / "base.raw").write_bytes(b"\0" * 512 + b"from the cwd\0" + bytes(4096))
    for d in (imgdir, elsewhere):
        data = bytearray((d / "base.raw").read_bytes())
        data[510:512] = b"\x55\xaa"
        (d / "base.raw").write_bytes(bytes(data) + bytes((2 << 20) - len(data)))
    img = overlay(qemu_img, imgdir / "o.qcow2", "base.raw")
    r = cli("cmdline", "get", img, cwd=elsewhere, timeout=TIMEOUT)
    assert (r.returncode, r.stdout.decode()) == (0, "from the image dir\n"), r.stderr
    # absolute names are used as they are (Capstan's instance disks name their base so)
    img2 = overlay(qemu_img, imgdir / "abs.qcow2", str(elsewhere / "base.raw"))
    r = cli("cmdline", "get", img2, timeout=TIMEOUT)
    assert (r.returncode, r.stdout.decode()) == (0, "from the cwd\n"), r.stderr


# --- chains -----------------------------------------------------------------------------------
def test_a_chain_that_loops(cli, qemu_img, tmp_path):
    a = overlay(qemu_img, tmp_path / "a.qcow2", "b.qcow2", "qcow2")
    overlay(qemu_img, tmp_path / "b.qcow2", "a.qcow2", "qcow2")
    check_every_reader(cli, tmp_path, a, 65, f"backing chain loops: it leads back to {a}")
    own = overlay(qemu_img, tmp_path / "self.qcow2", "self.qcow2", "qcow2")
    with pytest.raises(FormatError, match="loops: it leads back to"):
        open_disk(own)
    os.link(own, tmp_path / "hard.qcow2")       # the same inode under another name
    with pytest.raises(FormatError, match="loops"):
        open_disk(tmp_path / "hard.qcow2")
    as_raw = overlay(qemu_img, tmp_path / "raw-self.qcow2", "raw-self.qcow2", "raw")
    with pytest.raises(FormatError, match="loops"):   # its own bytes as a raw base
        open_disk(as_raw)


def test_chain_length_limit(qemu_img, tmp_path):
    base = tmp_path / "l0.raw"
    data = bytes(range(256)) * 8192                     # 2 MiB
    base.write_bytes(data)
    prev, fmt = base.name, "raw"
    for i in range(1, MAX_CHAIN):                       # l1..l15 + the raw base: 16 images
        overlay(qemu_img, tmp_path / f"l{i}.qcow2", prev, fmt)
        prev, fmt = f"l{i}.qcow2", "qcow2"
    with open_disk(tmp_path / prev) as d:               # the longest allowed chain reads
        assert d.read(0, len(data)) == data
    top = overlay(qemu_img, tmp_path / "top.qcow2", prev, "qcow2")
    with pytest.raises(FormatError) as e:
        open_disk(top)
    assert str(e.value).startswith(f"{top}: backing chain longer than {MAX_CHAIN} images")


# --- truncated qcow2 headers ------------------------------------------------------------------
def test_qcow2_cut_after_104_bytes_every_reader(cli, qemu_img, tmp_path):
    full = tmp_path / "full.qcow2"
    qimg(qemu_img, "create", "-q", "-f", "qcow2", full, "4M")
    img = tmp_path / "t.qcow2"
    img.write_bytes(full.read_bytes()[:104])           # v3 header without compression_type
    check_every_reader(cli, tmp_path, img, 65,
                       "truncated qcow2 header (104 of 112 bytes), expected the whole "
                       "112-byte header")


def test_qcow2_cut_anywhere_is_a_clean_error(qemu_img, tmp_path):
    """Every prefix of a real image up to past its L2 table: an OsvkitError or a good read,
    never another exception."""
    src = tmp_path / "src.raw"
    src.write_bytes(b"\x55" * 4096 + bytes((1 << 20) - 4096))
    full = tmp_path / "full.qcow2"
    qimg(qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", src, full)
    data = full.read_bytes()
    cut = tmp_path / "cut.qcow2"
    lengths = sorted(set(range(0, 600)) | {n for c in range(1, len(data) // 4096 + 1)
                                           for n in (4096 * c - 1, 4096 * c, 4096 * c + 1)})
    outcomes = set()
    for n in lengths:
        cut.write_bytes(data[:n])
        try:
            with open_disk(cut) as d:
                d.read(0, d.size)
            outcomes.add("read")
        except OsvkitError as exc:
            assert "\n" not in str(exc)
            outcomes.add(type(exc).__name__)
    assert "FormatError" in outcomes

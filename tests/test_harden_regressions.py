"""Regression tests for defects the bad-input campaign found in file output and the ROFS
builder: each failed (a traceback, a silent wrong result, a leftover) before its fix."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from osvkit.cli import main
from osvkit.fileio import STALE_AGE, remove_stale_temporaries

from conftest import run_cli  # noqa: E402

TIB16 = 17592186044416          # 16 TiB: more than ext4 holds in one file (4 KiB blocks)
OVER64 = 18446744073709551616   # 2**64: more than any file offset


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> Path:
    k = tmp_path_factory.mktemp("k") / "k.elf"
    assert main(["probe", "-o", str(k), "-q"]) == 0
    return k


def _one_line_error(r, status):
    err = r.stderr.decode()
    assert r.returncode == status, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_build_into_proc_cannot_create(kernel, fmt, request):
    if fmt == "qcow2":
        request.getfixturevalue("qemu_img")
    r = run_cli("build", kernel, "--image-format", fmt, "-o", "/proc/x")
    _one_line_error(r, 73)


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_size_past_a_file_offset_is_a_usage_error(kernel, tmp_path, fmt, request):
    if fmt == "qcow2":
        request.getfixturevalue("qemu_img")
    out = tmp_path / "s.img"
    r = run_cli("build", kernel, "-o", out, "--image-format", fmt, "--size", str(OVER64))
    err = _one_line_error(r, 64)
    assert f"at most {(1 << 63) - 1} bytes" in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_size_past_the_file_system_names_its_limit(kernel, tmp_path, fmt, request):
    if fmt == "qcow2":
        request.getfixturevalue("qemu_img")
    # the limit of the file system the test runs on, found the way osvkit finds it
    probe = tmp_path / "probe"
    with open(probe, "wb") as f:
        try:
            f.truncate(TIB16)
            pytest.skip(f"{tmp_path} holds a file of {TIB16} bytes: no limit to hit")
        except OSError:
            pass
    probe.unlink()
    out = tmp_path / "s.img"
    r = run_cli("build", kernel, "-o", out, "--image-format", fmt, "--size", str(TIB16))
    err = _one_line_error(r, 64)
    assert f"--size {TIB16} is more than the file system" in err and "expected at most " in err
    limit = int(err.rsplit("at most ", 1)[1].split()[0])
    assert 0 < limit < TIB16
    assert not out.exists() and not list(tmp_path.iterdir())


def test_size_with_thousands_of_digits(kernel, tmp_path):
    r = run_cli("build", kernel, "-o", tmp_path / "s.img", "--size", "9" * 5000)
    _one_line_error(r, 64)


@pytest.fixture(scope="module")
def rofs_img(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("r")
    (d / "a.txt").write_text("a\n")
    (d / "m").write_text(f"/a.txt: {d / 'a.txt'}\n")
    assert main(["rofs", "build", str(d / "m"), "-o", str(d / "r.img"), "-q"]) == 0
    return d / "r.img"


def test_extract_into_a_name_over_name_max(rofs_img, tmp_path):
    r = run_cli("rofs", "extract", rofs_img, tmp_path / ("d" * 300))
    err = _one_line_error(r, 73)
    assert "File name too long" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="no /proc/version on this host")
def test_proc_file_is_read_to_its_end(tmp_path):
    """/proc/version says 0 bytes in stat and has text when read: it used to go into the
    ROFS as an empty file without a word."""
    assert os.stat("/proc/version").st_size == 0
    (tmp_path / "m").write_text("/version: /proc/version\n")
    out = tmp_path / "r.img"
    assert main(["rofs", "build", str(tmp_path / "m"), "-o", str(out), "-q"]) == 0
    assert main(["rofs", "extract", str(out), str(tmp_path / "x"), "-q"]) == 0
    got = (tmp_path / "x" / "version").read_bytes()
    assert got == Path("/proc/version").read_bytes() and len(got) > 0


def test_unsized_file_that_would_wait_is_refused(tmp_path):
    """A FIFO with a silent writer stands in for a /proc file that blocks (/proc/kmsg, which
    needs privileges): refused, no hang."""
    from osvkit.errors import OsvkitError
    from osvkit.rofs.manifest import File, FileSource
    from osvkit.rofs.writer import _copy_unsized

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)   # open, never writes
    src = os.open(fifo, os.O_RDONLY)
    dst = os.open(tmp_path / "o", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OsvkitError, match="reading it would wait"):
            _copy_unsized(src, dst, 0, File(source=FileSource(path=str(fifo))), "o")
    finally:
        for fd in (writer, src, dst):
            os.close(fd)


# -- stale temporaries of a killed command ----------------------------------------------------

def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t), follow_symlinks=False)


def test_next_build_removes_stale_temporaries_only(kernel, tmp_path):
    old = STALE_AGE + 60
    stale_file = tmp_path / ".osvkit-ab12cd_e"
    stale_file.write_bytes(b"half an image")
    stale_dir = tmp_path / ".osvkit-build-zz9y8x7w"
    (stale_dir / "out" / "0").mkdir(parents=True)
    (stale_dir / "out" / "0" / "usr.img").write_bytes(b"x")
    stale_rofs = tmp_path / ".osvkit-rofs-q1w2e3r4"
    stale_rofs.mkdir()
    # kept: fresh (a command running now), not osvkit's name, a symlink, another pattern
    fresh = tmp_path / ".osvkit-fresh123"
    fresh.write_bytes(b"in use")
    user = tmp_path / ".osvkit-user-file-kept"
    user.write_bytes(b"mine")
    plain = tmp_path / "osvkit-ab12cd_e"
    plain.write_bytes(b"mine too")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious").write_bytes(b"p")
    link = tmp_path / ".osvkit-lnk45678"
    link.symlink_to(target)
    for p in (stale_file, stale_dir, stale_rofs, user, plain, link, target):
        _age(p, old)
    r = run_cli("build", kernel, "-o", tmp_path / "u.img")
    assert r.returncode == 0, r.stderr
    assert not stale_file.exists() and not stale_dir.exists() and not stale_rofs.exists()
    assert fresh.read_bytes() == b"in use" and user.read_bytes() == b"mine"
    assert plain.read_bytes() == b"mine too" and link.is_symlink()
    assert (target / "precious").read_bytes() == b"p"


def test_activity_inside_a_temporary_directory_keeps_it(tmp_path):
    d = tmp_path / ".osvkit-build-abcdefgh"
    (d / "sub").mkdir(parents=True)
    _age(d, STALE_AGE + 60)
    (d / "sub" / "being-written").write_bytes(b"x")      # fresh content: still in use
    assert remove_stale_temporaries(tmp_path) == []
    assert d.is_dir()
    _age(d, STALE_AGE + 60)
    assert remove_stale_temporaries(tmp_path) == [str(d)]


# -- the ROFS copy paths give the same bytes ------------------------------------------------

@pytest.mark.parametrize("broken", [(), ("copy_file_range",), ("copy_file_range", "sendfile")])
def test_every_copy_path_gives_the_same_image(tmp_path, monkeypatch, broken):
    """copy_file_range, sendfile and plain reads (each taken when the faster ones fail, as
    across file systems) write byte-identical images, sparse files included."""
    import errno

    from osvkit.rofs import build_rofs
    from osvkit.rofs import writer

    src = tmp_path / "src"
    src.mkdir()
    (src / "small").write_bytes(b"s" * 1000)
    with open(src / "sparse", "wb") as f:        # data, a hole, data: more than CHUNK_SIZE
        f.write(os.urandom(3000))
        f.seek(5 * writer.CHUNK_SIZE)
        f.write(b"end")
    (src / "big").write_bytes(os.urandom(2 * writer.CHUNK_SIZE + 123))
    manifest = tmp_path / "m"
    manifest.write_text(f"/d/**: {src}/**\n")
    build_rofs(manifest, tmp_path / "ref.img")
    calls = {"copy_file_range": 0, "sendfile": 0}

    def failing(name):
        def f(*a, **k):
            calls[name] += 1
            raise OSError(errno.EXDEV if name == "copy_file_range" else errno.EINVAL, "no")
        return f
    for name in broken:
        monkeypatch.setattr(writer.os, name, failing(name))
    # the write-behind runs too, in small windows: it starts and waits, and changes no byte
    monkeypatch.setattr(writer, "WRITEBACK_EVERY", 1 << 20)
    monkeypatch.setattr(writer, "WRITEBACK_ALIGN", 1 << 16)
    synced = []
    real_sync = writer._sync_range

    def counting_sync(fd, begin, end, flags, output):
        synced.append(flags)
        real_sync(fd, begin, end, flags, output)
    monkeypatch.setattr(writer, "_sync_range", counting_sync)
    build_rofs(manifest, tmp_path / "alt.img")
    assert (tmp_path / "alt.img").read_bytes() == (tmp_path / "ref.img").read_bytes()
    for name in broken:
        assert calls[name] == 1        # tried once, then the next path for every file
    assert writer._SYNC_FILE_RANGE_WRITE in synced and writer._SYNC_FILE_RANGE_WAIT_ALL in synced


def test_write_behind_error_is_a_one_line_io_error(tmp_path, monkeypatch, capsys):
    """A write error the write-behind's wait reports (the kernel reports it once, so the
    final fsync would not) fails the build: a one-line I/O error, no output, no temporary."""
    import ctypes
    import errno

    from osvkit.rofs import writer

    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(3 << 20))
    (tmp_path / "m").write_text(f"/d/**: {src}/**\n")
    monkeypatch.setattr(writer, "WRITEBACK_EVERY", 1 << 20)
    monkeypatch.setattr(writer, "WRITEBACK_ALIGN", 1 << 16)

    def failing_sync(fd, offset, length, flags):
        if flags & 4:                  # the wait: where the kernel reports a failed write
            ctypes.set_errno(errno.EIO)
            return -1
        return 0
    monkeypatch.setattr(writer, "_sync_file_range", failing_sync)
    out = tmp_path / "out" / "r.img"
    out.parent.mkdir()
    assert main(["rofs", "build", str(tmp_path / "m"), "-o", str(out)]) == 74
    err = capsys.readouterr().err
    assert err == f"error: {out}: write failed: {os.strerror(errno.EIO)}\n", err
    assert list(out.parent.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "osvkit-write-behind"]


def test_write_behind_ends_when_the_copy_fails(tmp_path, monkeypatch, capsys):
    """A host file that disappears while the write-behind runs: the input's one-line error,
    and the write-behind thread has ended before the image is removed."""
    from osvkit.rofs import writer

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(3 << 20))
    (src / "b").write_bytes(b"b" * 1000)
    (tmp_path / "m").write_text(f"/d/**: {src}/**\n")
    monkeypatch.setattr(writer, "WRITEBACK_EVERY", 1 << 20)
    monkeypatch.setattr(writer, "WRITEBACK_ALIGN", 1 << 16)
    real_copy = writer._Copier.copy
    running = []

    def copy(self, *args):
        real_copy(self, *args)
        running.append(self.behind.thread is not None and self.behind.thread.is_alive())
        (src / "b").unlink()
    monkeypatch.setattr(writer._Copier, "copy", copy)
    out = tmp_path / "out" / "r.img"
    out.parent.mkdir()
    assert main(["rofs", "build", str(tmp_path / "m"), "-o", str(out)]) == 66
    assert f"host file {src / 'b'} disappeared" in capsys.readouterr().err
    assert running == [True]
    assert list(out.parent.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "osvkit-write-behind"]

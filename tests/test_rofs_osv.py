"""Compatibility with OSv's own ``scripts/gen-rofs-img.py``.

OSv's scripts are not part of osvkit (nothing from OSv is committed).  Point
``OSVKIT_OSV_SCRIPTS`` at a directory holding OSv's ``gen-rofs-img.py`` and
``manifest_common.py`` (e.g. ``git show HEAD:scripts/gen-rofs-img.py`` from a
cloudius-systems/osv checkout) to run these tests; they skip, with that reason, otherwise.

Checked: for a manifest that lists each directory's entries in sorted order, osvkit's image
is byte-identical to gen-rofs-img's; for any order, osvkit's reader reads gen-rofs-img's image
and finds the same tree (only the order of entries, and so inode numbers, differ).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from osvkit.rofs import RofsImage, build_rofs


@pytest.fixture(scope="module")
def gen_rofs_img() -> Path:
    d = os.environ.get("OSVKIT_OSV_SCRIPTS")
    if not d:
        pytest.skip("OSVKIT_OSV_SCRIPTS is not set (directory with OSv's gen-rofs-img.py)")
    p = Path(d) / "gen-rofs-img.py"
    if not p.is_file():
        pytest.fail(f"OSVKIT_OSV_SCRIPTS={d} has no gen-rofs-img.py")
    return p


def make_host(root: Path) -> None:
    (root / "h" / "d1" / "d2").mkdir(parents=True)
    (root / "h" / "e").mkdir()
    (root / "h" / "a").write_bytes(b"hi")
    (root / "h" / "d1" / "big").write_bytes(bytes(range(256)) * 6)         # 1536: aligned
    (root / "h" / "d1" / "empty").write_bytes(b"")
    (root / "h" / "d1" / "d2" / "z").write_bytes(b"z" * 700)


SORTED = """\
/a: h/a
/d1/big: h/d1/big
/d1/d2/z: h/d1/d2/z
/d1/empty: h/d1/empty
/e: h/e
/l: ->a
/m: ->/d1/d2
"""
UNSORTED = """\
/m: ->/d1/d2
/e: h/e
/d1/empty: h/d1/empty
/d1/d2/z: h/d1/d2/z
/a: h/a
/l: ->a
/d1/big: h/d1/big
/w/**: h/d1/**
/&/h/a: ./&
"""
# 2 empty dirs named with 198 bytes: 512 bytes of structure, the whole-extra-block case
ALIGNED = "/{a}: h/e\n/{b}: h/e\n".format(a="a" * 198, b="b" * 198)


def run_osv(script: Path, cwd: Path, manifest: str) -> bytes:
    (cwd / "osv.manifest").write_text(manifest)
    subprocess.run([sys.executable, str(script), "-o", "osv.img", "-m", "osv.manifest"], cwd=cwd,
                   check=True, capture_output=True)
    return (cwd / "osv.img").read_bytes()


def tree_of(path: Path) -> dict:
    with RofsImage(path) as img:
        return {e.path: (e.type, e.size, e.target, img.read(e) if e.type == "file" else None)
                for e in img.entries}


@pytest.mark.parametrize("manifest", [SORTED, ALIGNED], ids=["sorted", "aligned"])
def test_byte_identical_to_gen_rofs_img(gen_rofs_img, tmp_path, manifest):
    make_host(tmp_path)
    theirs = run_osv(gen_rofs_img, tmp_path, manifest)
    (tmp_path / "m").write_text(manifest)
    build_rofs(tmp_path / "m", tmp_path / "ours.img", manifest_root=tmp_path, osv_defaults=False)
    assert (tmp_path / "ours.img").read_bytes() == theirs


def test_reader_reads_gen_rofs_img_in_manifest_order(gen_rofs_img, tmp_path):
    make_host(tmp_path)
    run_osv(gen_rofs_img, tmp_path, UNSORTED)
    (tmp_path / "m").write_text(UNSORTED)
    build_rofs(tmp_path / "m", tmp_path / "ours.img", manifest_root=tmp_path, osv_defaults=False)
    theirs = tree_of(tmp_path / "osv.img")
    assert theirs == tree_of(tmp_path / "ours.img")
    with RofsImage(tmp_path / "osv.img") as img:
        # OSv's order is the manifest's (dict insertion order): /m first
        assert [e.path for e in img.entries][:3] == ["/", "/m", "/e"]
    assert theirs["/d1/big"] == ("file", 1536, None, bytes(range(256)) * 6)
    assert theirs["/m"] == ("symlink", 6, "/d1/d2", None)
    assert theirs["/w/d2/z"] == ("file", 700, None, b"z" * 700) and theirs["/h/a"][3] == b"hi"

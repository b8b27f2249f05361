"""Write/read round trips over generated trees (hypothesis), long names, deep nesting,
many entries, and files over 4 GiB described by sparse host files (never materialised)."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osvkit.errors import ManifestError
from osvkit.rofs import (Dir, File, FileSource, GuestTree, RofsImage, Symlink, build_rofs,
                         extract_rofs)

NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0")
names = st.text(NAME_CHARS, min_size=1, max_size=40).filter(lambda s: s not in (".", "..")
                                                           and len(s.encode()) <= 255)
leaf = st.one_of(
    st.binary(max_size=1500).map(lambda b: ("file", b)),
    st.text(NAME_CHARS, min_size=1, max_size=30).map(lambda t: ("link", t)),
    st.just(("dir", None)),
)
trees = st.recursive(leaf, lambda kids: st.dictionaries(names, kids, max_size=6).map(lambda d: ("dir", d)),
                     max_leaves=40)


def to_guest_tree(spec, hostdir: str) -> tuple[GuestTree, dict]:
    """Build a GuestTree (file data in host files, or in memory for every third file) and the
    expected {path: (type, value)} map."""
    tree = GuestTree()
    expected = {"/": ("dir", None)}
    counter = [0]

    def add(path, node):
        kind, value = node
        if kind == "dir":
            tree.add(path or "/", Dir())
            expected[path or "/"] = ("dir", None)
            for name, child in (value or {}).items():
                add(f"{path}/{name}", child)
        elif kind == "link":
            tree.add(path, Symlink(target=value))
            expected[path] = ("symlink", value)
        else:
            counter[0] += 1
            if counter[0] % 3:
                hp = os.path.join(hostdir, f"f{counter[0]}")
                with open(hp, "wb") as f:
                    f.write(value)
                tree.add(path, File(source=FileSource(path=hp)))
            else:
                tree.add(path, File(source=FileSource(data=value)))
            expected[path] = ("file", value)

    if spec[0] != "dir":
        spec = ("dir", {"only": spec})
    add("", spec)
    return tree, expected


def read_back(img: RofsImage) -> dict:
    out = {}
    for e in img.entries:
        if e.type == "dir":
            out[e.path] = ("dir", None)
        elif e.type == "symlink":
            out[e.path] = ("symlink", e.target)
        else:
            out[e.path] = ("file", img.read(e))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_roundtrip_generated_trees(spec):
    with tempfile.TemporaryDirectory() as d:
        tree, expected = to_guest_tree(spec, d)
        out = os.path.join(d, "t.img")
        r = build_rofs(tree, out, osv_defaults=False)
        with RofsImage(out) as img:
            assert read_back(img) == expected
            assert img.superblock["inodes_count"] == len(expected) == r.inodes_count
            assert img.superblock["directory_entries_count"] == len(expected) - 1
            # rebuilding from the image's own data gives the same bytes: build(parse(b)) == b
            again = GuestTree()
            for e in img.entries[1:]:
                if e.type == "dir":
                    again.add(e.path, Dir())
                elif e.type == "symlink":
                    again.add(e.path, Symlink(target=e.target))
                else:
                    again.add(e.path, File(source=FileSource(path=out, offset=e.data_offset, size=e.size)))
            out2 = os.path.join(d, "t2.img")
            build_rofs(again, out2, osv_defaults=False)
        with open(out, "rb") as a, open(out2, "rb") as b:
            assert a.read() == b.read()
        # extraction writes the same tree to disk
        ex = os.path.join(d, "ex")
        extract_rofs(out, ex)
        for path, (kind, value) in expected.items():
            hp = ex + path
            if kind == "dir":
                assert os.path.isdir(hp) and not os.path.islink(hp)
            elif kind == "symlink":
                assert os.readlink(hp) == value
            else:
                with open(hp, "rb") as f:
                    assert f.read() == value


def test_inode_numbering_is_preorder_and_entries_post_order(tmp_path):
    t = GuestTree()
    for p in ("/b/y/deep", "/b/x", "/a", "/c/z"):
        t.add(p, File(source=FileSource(data=b"")))
    build_rofs(t, tmp_path / "o.img", osv_defaults=False)
    with RofsImage(tmp_path / "o.img") as img:
        assert [(e.path, e.inode_no) for e in img.entries] == [
            ("/", 1), ("/a", 2), ("/b", 3), ("/b/x", 4), ("/b/y", 5), ("/b/y/deep", 6),
            ("/c", 7), ("/c/z", 8)]
        # post-order: /b/y's entries, then /b's, then /c's, then the root's
        assert [(n, name) for n, name in img.dir_entries] == [
            (6, b"deep"), (4, b"x"), (5, b"y"), (8, b"z"), (2, b"a"), (3, b"b"), (7, b"c")]


@pytest.mark.parametrize("length", [1, 2, 127, 254, 255])
def test_names_up_to_osv_name_max(tmp_path, length):
    t = GuestTree()
    t.add("/" + "n" * length, File(source=FileSource(data=b"1")))
    t.add("/d/" + "é" * (length // 2) + "x" * (length % 2), Dir())  # 2-byte UTF-8 chars
    build_rofs(t, tmp_path / "o.img", osv_defaults=False)
    with RofsImage(tmp_path / "o.img") as img:
        assert {e.path for e in img.entries} == {
            "/", "/d", "/" + "n" * length, "/d/" + "é" * (length // 2) + "x" * (length % 2)}


@pytest.mark.parametrize("length", [256, 1000, 65535])
def test_names_beyond_name_max_need_format_limits(tmp_path, length):
    t = GuestTree()
    t.add("/" + "n" * length, Dir())
    with pytest.raises(ManifestError, match=f"name of {length} bytes in /.*, expected at most 255 bytes"):
        build_rofs(t, tmp_path / "o.img", osv_defaults=False)
    assert os.listdir(tmp_path) == []
    build_rofs(t, tmp_path / "o.img", osv_defaults=False, limits="format")
    with RofsImage(tmp_path / "o.img") as img:
        assert img.entries[1].path == "/" + "n" * length
        assert img.dir_entries[0][1] == b"n" * length


def test_names_longer_than_the_u16_are_rejected(tmp_path):
    t = GuestTree()
    t.add("/" + "n" * 65536, Dir())
    with pytest.raises(ManifestError, match="name of 65536 bytes .* expected at most 65535 bytes"):
        build_rofs(t, tmp_path / "o.img", osv_defaults=False, limits="format")
    t = GuestTree()
    t.add("/l", Symlink(target="t" * 65536))
    with pytest.raises(ManifestError, match="symlink /l target of 65536 bytes"):
        build_rofs(t, tmp_path / "o.img", osv_defaults=False, limits="format")
    assert os.listdir(tmp_path) == []


def test_deep_nesting(tmp_path):
    depth = 400
    path = "".join(f"/d{i}" for i in range(depth))
    t = GuestTree()
    t.add(path + "/leaf", File(source=FileSource(data=b"deep")))
    build_rofs(t, tmp_path / "o.img", osv_defaults=False)
    with RofsImage(tmp_path / "o.img") as img:
        assert len(img.entries) == depth + 2
        assert img.read(img.entries[-1]) == b"deep"
    extract_rofs(tmp_path / "o.img", tmp_path / "ex")
    fd = os.open(tmp_path / "ex", os.O_RDONLY)
    try:   # walk down with dir fds: the path is longer than the host's PATH_MAX allows
        for i in range(depth):
            nfd = os.open(f"d{i}", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("leaf", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"deep"
    finally:
        os.close(fd)


def test_many_thousands_of_entries(tmp_path):
    t = GuestTree()
    for i in range(6000):
        t.add(f"/d{i % 50}/f{i}", File(source=FileSource(data=b"%d" % i)))
    r = build_rofs(t, tmp_path / "o.img")
    assert r.inodes_count == 1 + 50 + 6000 + 5 + 1  # + /dev /etc /proc /sys /tmp, /etc/fstab
    with RofsImage(tmp_path / "o.img") as img:
        by_path = {e.path: e for e in img.entries}
        assert img.read(by_path["/d7/f5957"]) == b"5957"
        assert len(by_path) == r.inodes_count


def test_file_over_4gib_from_a_sparse_host_file(tmp_path):
    size = (5 << 30) + 3
    src = tmp_path / "big"
    with open(src, "wb") as f:
        f.truncate(size)
        f.seek(0)
        f.write(b"HEAD")
        f.seek(1 << 32)
        f.write(b"AT4G")
        f.seek(size - 3)
        f.write(b"END")
    t = GuestTree()
    t.add("/big", File(source=FileSource(path=str(src))))
    t.add("/small", File(source=FileSource(data=b"after")))
    out = tmp_path / "o.img"
    build_rofs(t, out, osv_defaults=False)
    st_ = os.stat(out)
    assert st_.st_blocks * 512 < 64 << 20, "the image must stay sparse"
    with RofsImage(out) as img:
        e = {x.path: x for x in img.entries}
        assert e["/big"].size == size
        # the inode's count field holds the u64 size
        assert img.inodes[e["/big"].inode_no - 1] == ("file", 1, size)
        with open(out, "rb") as f:
            for off, want in ((0, b"HEAD"), (1 << 32, b"AT4G"), (size - 3, b"END"), (100, bytes(4))):
                f.seek(e["/big"].data_offset + off)
                assert f.read(len(want)) == want
        # the next file starts after ceil(size / 512) blocks
        assert e["/small"].data_offset == 512 * (1 + -(-size // 512))
        assert img.read(e["/small"]) == b"after"
    extract_rofs(out, tmp_path / "ex")
    big = tmp_path / "ex" / "big"
    assert os.path.getsize(big) == size and os.stat(big).st_blocks * 512 < 64 << 20
    with open(big, "rb") as f:
        f.seek(1 << 32)
        assert f.read(4) == b"AT4G"
        f.seek(size - 3)
        assert f.read() == b"END"


def test_output_left_alone_on_error(tmp_path):
    out = tmp_path / "o.img"
    out.write_bytes(b"previous")
    t = GuestTree()
    t.add("/a", File(source=FileSource(data=b"x")))
    t.add("/b", File(source=FileSource(path=str(tmp_path / "vanished"))))
    with pytest.raises(ManifestError, match="vanished"):
        build_rofs(t, out, osv_defaults=False)
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["o.img"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 65535))
def test_any_name_length_up_to_the_u16(length):
    with tempfile.TemporaryDirectory() as d:
        name = ("é" * (length // 2)) + ("x" * (length % 2))    # exactly `length` UTF-8 bytes
        t = GuestTree()
        t.add("/" + name, File(source=FileSource(data=b"v")))
        out = os.path.join(d, "o.img")
        build_rofs(t, out, osv_defaults=False, limits="format")
        with RofsImage(out) as img:
            assert img.dir_entries == [(2, name.encode())]
            assert img.read(img.entries[1]) == b"v"


byte_names = st.binary(min_size=1, max_size=255).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(max_examples=60, deadline=None)
@given(st.lists(byte_names, min_size=1, max_size=20, unique=True))
def test_any_name_bytes_round_trip(raw_names):
    """Names are bytes on disk: every byte but '/' and NUL, UTF-8 or not, comes back, and
    directory entries are in byte order."""
    with tempfile.TemporaryDirectory() as d:
        t = GuestTree()
        for i, raw in enumerate(raw_names):
            t.add("/" + raw.decode("utf-8", "surrogateescape"), Symlink(target=f"t{i}"))
        out = os.path.join(d, "o.img")
        build_rofs(t, out, osv_defaults=False)
        with RofsImage(out) as img:
            assert [n for _, n in img.dir_entries] == sorted(raw_names)
            want = {"/" + r.decode("utf-8", "surrogateescape"): f"t{i}" for i, r in enumerate(raw_names)}
            assert {e.path: e.target for e in img.entries[1:]} == want
        ex = os.path.join(d, "ex")
        extract_rofs(out, ex)
        assert sorted(os.listdir(os.fsencode(ex))) == sorted(raw_names)


def test_extract_wide_tree_of_directories(tmp_path):
    """More directories than the process may hold open descriptors for."""
    import resource
    n = 600
    t = GuestTree()
    for i in range(n):
        t.add(f"/d{i}/x", Dir())
    build_rofs(t, tmp_path / "o.img", osv_defaults=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        extract_rofs(tmp_path / "o.img", tmp_path / "ex")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(os.listdir(tmp_path / "ex")) == n

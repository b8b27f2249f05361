"""OSv manifest parsing: syntax, substitutions, patterns, safety."""

from __future__ import annotations

import os

import pytest

from osvkit.errors import EX_DATAERR, EX_NOINPUT, ManifestError, ManifestInputError
from osvkit.rofs import Dir, GuestTree, Symlink, build_rofs, parse_manifest, read_manifest
from osvkit.rofs.manifest import substitute, Origin


def write(path, text):
    path.write_text(text)
    return path


def summary(tree: GuestTree) -> dict:
    out = {}
    for path, node in tree.walk():
        if isinstance(node, Dir):
            out[path] = "dir"
        elif isinstance(node, Symlink):
            out[path] = "-> " + node.target
        else:
            src = node.source
            out[path] = src.data if src.data is not None else open(src.path, "rb").read()
    return out


@pytest.fixture
def host(tmp_path):
    h = tmp_path / "host"
    (h / "lib" / "sub").mkdir(parents=True)
    (h / "lib" / "libx.so").write_bytes(b"X")
    (h / "lib" / "sub" / "y").write_bytes(b"Y")
    (h / "lib" / "emptydir").mkdir()
    (h / "static" / "etc").mkdir(parents=True)
    (h / "static" / "etc" / "hosts").write_bytes(b"127.0.0.1 localhost\n")
    (h / "bin").mkdir()
    (h / "bin" / "real").write_bytes(b"R")
    os.symlink("real", h / "bin" / "alias")
    return h


def test_every_form(tmp_path, host):
    m = write(tmp_path / "usr.manifest", f"""\
[manifest]
# a comment
   # an indented comment

/usr/lib/**: {host}/lib/**
/&/etc/hosts: %(static)s/&
/lib/ld.so: ->/usr/lib/libx.so
/bin/kept: !{host}/bin/alias
/bin/followed: {host}/bin/alias
/opt: {host}/lib/emptydir
/pct%: {host}/bin/real
/x: {host}/bin/%%real%%
""")
    (host / "bin" / "%real%").write_bytes(b"P")
    tree = parse_manifest(m, defines={"static": str(host / "static")})
    assert summary(tree) == {
        "/": "dir",
        "/bin": "dir",
        "/bin/followed": b"R",
        "/bin/kept": "-> real",
        "/etc": "dir",
        "/etc/hosts": b"127.0.0.1 localhost\n",
        "/lib": "dir",
        "/lib/ld.so": "-> /usr/lib/libx.so",
        "/opt": "dir",
        "/pct%": b"R",
        "/usr": "dir",
        "/usr/lib": "dir",
        "/usr/lib/libx.so": b"X",
        "/usr/lib/sub": "dir",
        "/usr/lib/sub/y": b"Y",
        "/x": b"P",
    }
    # "**" adds files only: the empty host directory below lib/ is not in the tree
    assert tree.lookup("/usr/lib/emptydir") is None


def test_relative_host_paths_use_cwd_or_manifest_root(tmp_path, host, monkeypatch):
    m = write(tmp_path / "m", "/a: bin/real\n")
    monkeypatch.chdir(host)
    assert summary(parse_manifest(m))["/a"] == b"R"
    monkeypatch.chdir(tmp_path)
    assert summary(parse_manifest(m, root=host))["/a"] == b"R"
    with pytest.raises(ManifestInputError) as e:
        parse_manifest(m)
    assert str(e.value).startswith(f"{m}:1: no such file {tmp_path}/bin/real")
    assert e.value.exit_status == EX_NOINPUT


@pytest.mark.parametrize("text, line, message", [
    ("/a: b\n/c d\n", 2, "no ': ' separator in '/c d', expected 'guest: host'"),
    ("/a: b: c\n", 1, "more than one ': '"),
    ("\n\n/x/**: /h\n", 3, "'/**' on one side only"),
    ("/x: /h/**\n", 1, "'/**' on one side only"),
    ("/a: %(nope)s/x\n", 1, "%(nope)s is not defined, expected -D nope=VALUE"),
    ("/a: 50%/x\n", 1, "bad substitution '%/x'"),
    ("/a: %(v)d\n", 1, "bad substitution"),
    ("a/b: /h\n", 1, "guest path 'a/b' is not absolute"),
    ("/a/../../b: /h\n", 1, "guest path '/a/../../b' climbs above /"),
    ("/&/etc/x: /h/etc/x\n", 1, "'/&/' shorthand needs"),
    ("/etc/x: /h/&\n", 1, "'/&/' shorthand needs"),
    ("/l: ->\n", 1, "empty symlink target"),
    ("/l/**: ->x\n", 1, "symlink line with a pattern guest path"),
    (": /h\n", 1, "empty guest path"),
])
def test_syntax_errors_name_file_and_line(tmp_path, text, line, message):
    m = write(tmp_path / "bad.manifest", text)
    with pytest.raises(ManifestError) as e:
        parse_manifest(m, defines={"v": "1"})
    assert str(e.value).startswith(f"{m}:{line}: "), str(e.value)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.exit_status == EX_DATAERR


def test_substitute_rules():
    o = Origin("m", 1)
    assert substitute("%(a)s/%(b)s%%", {"a": "x", "b": "y"}, o) == "x/y%"
    assert substitute("no percent", {}, o) == "no percent"
    assert substitute("%%(a)s", {}, o) == "%(a)s"


def test_guest_paths_are_normalised(tmp_path, host):
    m = write(tmp_path / "m", f"//usr/./lib//../bin/x/: {host}/bin/real\n")
    assert "/usr/bin/x" in summary(parse_manifest(m))


@pytest.mark.parametrize("text, line", [
    ("/a: {f}\n/a/b: {f}\n", 2),     # file, then used as a directory
    ("/a/b: {f}\n/a: {f}\n", 2),     # directory, then a file
    ("/a/b: {f}\n/a: ->x\n", 2),     # directory, then a symlink
    ("/a: {d}\n/a: {f}\n", 2),       # host directory, then a file
])
def test_file_directory_collision(tmp_path, host, text, line):
    m = write(tmp_path / "m", text.format(f=host / "bin" / "real", d=host / "lib"))
    with pytest.raises(ManifestError, match=rf"^{m}:{line}: guest path /a is a "):
        parse_manifest(m)


def test_later_line_replaces_earlier_and_directories_merge(tmp_path, host):
    m = write(tmp_path / "m", f"/a: {host}/bin/real\n/a: ->z\n/d: {host}/lib/emptydir\n"
                              f"/d/f: {host}/lib/libx.so\n/d: {host}/lib/emptydir\n")
    s = summary(parse_manifest(m))
    assert s["/a"] == "-> z" and s["/d"] == "dir" and s["/d/f"] == b"X"


def test_missing_host_paths(tmp_path, host):
    m = write(tmp_path / "m", f"/a: {host}/nope\n/b: {host}/bin/real\n/c/**: {host}/nodir/**\n")
    with pytest.raises(ManifestInputError, match=rf"^{m}:1: no such file .*/nope, expected an existing"):
        parse_manifest(m)
    t = parse_manifest(m, allow_missing=True)
    assert summary(t) == {"/": "dir", "/b": b"R"}


def test_symlinks_followed_only_inside_named_directories(tmp_path, host):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"S")
    os.symlink(outside / "secret", host / "lib" / "leak")
    os.symlink("../../outside/secret", host / "bin" / "leak2")
    m = write(tmp_path / "m", f"/usr/lib/**: {host}/lib/**\n")
    with pytest.raises(ManifestError, match=r"m:1: host symlink .*/lib/leak leads to .*/outside/secret, "
                                            r"outside the directories the manifest names"):
        parse_manifest(m)
    m2 = write(tmp_path / "m2", f"/x: {host}/bin/leak2\n")
    with pytest.raises(ManifestError, match="outside the directories"):
        parse_manifest(m2)
    assert summary(parse_manifest(m, follow_symlinks_anywhere=True))["/usr/lib/leak"] == b"S"
    # naming the directory in the manifest allows it
    m3 = write(tmp_path / "m3", f"/usr/lib/**: {host}/lib/**\n/s/**: {outside}/**\n")
    assert summary(parse_manifest(m3))["/usr/lib/leak"] == b"S"
    # "!" keeps the link as a link, wherever it points
    m4 = write(tmp_path / "m4", f"/usr/lib/**: !{host}/lib/**\n")
    assert summary(parse_manifest(m4))["/usr/lib/leak"] == f"-> {outside}/secret"


def test_absolute_link_looked_up_below_ancestors_like_osv(tmp_path):
    # a sysroot: root/lib/libc.so -> /lib/libc.so.6 means root/lib/libc.so.6
    root = tmp_path / "root"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "libc.so.6").write_bytes(b"C")
    os.symlink("/lib/libc.so.6", root / "lib" / "libc.so")
    m = write(tmp_path / "m", f"/lib/**: {root}/**\n")
    assert summary(parse_manifest(m))["/lib/lib/libc.so"] == b"C"


def test_cyclic_symlinks_are_errors(tmp_path, host):
    os.symlink("b", host / "bin" / "a")
    os.symlink("a", host / "bin" / "b")
    m = write(tmp_path / "m", f"/x: {host}/bin/a\n")
    with pytest.raises(ManifestError, match=rf"^{m}:1: cyclic symlink .*/bin/a"):
        parse_manifest(m)
    # a directory symlink pointing back up inside a "**" tree
    os.symlink("..", host / "lib" / "sub" / "up")
    m2 = write(tmp_path / "m2", f"/l/**: {host}/lib/**\n")
    with pytest.raises(ManifestError, match=rf"^{m2}:1: cyclic symlink .*/lib/sub/up"):
        parse_manifest(m2)


def test_directory_symlink_inside_tree_is_followed(tmp_path, host):
    os.symlink("sub", host / "lib" / "subalias")
    m = write(tmp_path / "m", f"/l/**: {host}/lib/**\n")
    s = summary(parse_manifest(m))
    assert s["/l/subalias/y"] == b"Y" and s["/l/sub/y"] == b"Y"


def test_special_files_are_rejected(tmp_path, host):
    os.mkfifo(host / "lib" / "fifo")
    m = write(tmp_path / "m", f"/l/**: {host}/lib/**\n")
    with pytest.raises(ManifestError, match="is not a regular file or directory"):
        parse_manifest(m)


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ManifestInputError, match="no such file"):
        read_manifest(tmp_path / "none")
    (tmp_path / "bin").write_bytes(b"/a: b\n\xff\n")
    with pytest.raises(ManifestError, match=r"bin:2: not UTF-8 text"):
        read_manifest(tmp_path / "bin")


def test_tree_does_not_depend_on_host_order_or_time(tmp_path):
    """Two host trees with the same content, created in opposite orders and with different
    times, give byte-identical images."""
    names = [f"f{i:03d}" for i in range(60)] + ["Z", "a", "é", "_"]
    imgs = []
    for k, order in enumerate((names, list(reversed(names)))):
        h = tmp_path / f"h{k}"
        (h / "d").mkdir(parents=True)
        for n in order:
            (h / "d" / n).write_bytes(n.encode() * 3)
            os.utime(h / "d" / n, (k * 1000 + 1, k * 1000 + 1))
        m = write(tmp_path / f"m{k}", "/x/**: d/**\n")
        out = tmp_path / f"o{k}.img"
        build_rofs(m, out, manifest_root=h)
        imgs.append(out.read_bytes())
    assert imgs[0] == imgs[1]


from hypothesis import given, settings, strategies as st  # noqa: E402

_hnames = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
                  min_size=1, max_size=20).filter(lambda s: s not in (".", "..")
                                                  and len(s.encode()) <= 200)
_htree = st.recursive(st.binary(max_size=700),
                      lambda kids: st.dictionaries(_hnames, kids, max_size=5), max_leaves=25)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_hnames, _htree, max_size=6))
def test_recursive_line_round_trips_host_tree(spec):
    """A host tree added with '/x/**: host/**' comes back file for file through build and
    extract; empty host directories are not added (directories are implied by files)."""
    import tempfile
    from osvkit.rofs import extract_rofs

    with tempfile.TemporaryDirectory() as d:
        host = os.path.join(d, "host")
        os.mkdir(host)
        expected = {}

        def make(base, rel, node):
            for name, child in node.items():
                p = os.path.join(base, name)
                r = f"{rel}/{name}"
                if isinstance(child, dict):
                    os.mkdir(p)
                    make(p, r, child)
                else:
                    with open(p, "wb") as f:
                        f.write(child)
                    expected[r] = child

        make(host, "", spec)
        with open(os.path.join(d, "m"), "w") as f:
            f.write("[manifest]\n/x/**: host/**\n")
        build_rofs(os.path.join(d, "m"), os.path.join(d, "o.img"), manifest_root=d, osv_defaults=False)
        extract_rofs(os.path.join(d, "o.img"), os.path.join(d, "ex"))
        got = {}
        top = os.path.join(d, "ex", "x")
        for dirpath, dirnames, filenames in os.walk(top):
            assert dirnames or filenames, f"empty directory {dirpath} in the image"
            for fn in filenames:
                with open(os.path.join(dirpath, fn), "rb") as f:
                    got[os.path.join(dirpath, fn)[len(top):]] = f.read()
        assert got == expected

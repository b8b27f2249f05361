"""The DT_NEEDED closure of host programs, checked against ldd (the oracle, never used by
osvkit), plus the ELF reader's errors, the ld.so.cache reader and the supplied-sonames scan."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from osvkit.apps import (DEFAULT_SUPPLIED, MissingLibraryError, load_ld_cache, parse_ld_cache,
                         read_elf_info, resolve_closure, supplied_sonames)
from osvkit.apps.closure import Resolver, expand_dst
from osvkit.apps.supplied import default
from osvkit.errors import FormatError
from osvkit.structs import ldcache as S

from conftest import missing_tool


@pytest.fixture(scope="module")
def probe_elf(tmp_path_factory) -> Path:
    from osvkit.probe import build_probe
    p = tmp_path_factory.mktemp("probe") / "probe.elf"
    p.write_bytes(build_probe(None))
    return p


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        missing_tool("gcc is not installed (install.sh installs it)")
    return gcc


def ldd_libraries(program) -> dict[str, str]:
    """soname -> real path, from ldd (the test oracle)."""
    if shutil.which("ldd") is None:
        missing_tool("ldd is not installed")
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(0x", line)
        if m:
            libs[m.group(1)] = os.path.realpath(m.group(2))
        elif "not found" in line:
            libs[line.split()[0]] = None
    return libs


def closure_libraries(closure) -> dict[str, str]:
    return {e.soname: e.source for e in closure.entries if e.kind == "library"}


def _oracle(program) -> dict[str, str]:
    return {n: p for n, p in ldd_libraries(program).items() if n not in DEFAULT_SUPPLIED}


@pytest.mark.parametrize("program", ["/usr/bin/python3.11", "/usr/bin/qemu-img"])
def test_closure_of_host_programs_matches_ldd(program):
    if not os.path.exists(program):
        missing_tool(f"{program} is not installed (install.sh installs it)")
    closure = resolve_closure([program])
    assert closure_libraries(closure) == _oracle(program)
    # every library goes to /usr/lib under its DT_NEEDED name, with its real file's bytes
    for e in closure.entries:
        if e.kind == "library":
            assert e.guest == "/usr/lib/" + e.soname
            assert e.needed_by and not os.path.islink(e.source)
    assert [e.guest for e in closure.entries] == sorted(e.guest for e in closure.entries)
    assert {u.soname for u in closure.supplied} <= set(DEFAULT_SUPPLIED)
    assert "libc.so.6" in {u.soname for u in closure.supplied}


def _build_rpath_program(tmp_path: Path, rpath: str, *, new_dtags: bool = True) -> Path:
    gcc = _gcc()
    (tmp_path / "lib").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "greet.c").write_text('#include <stdio.h>\nvoid greet(void){puts("hi");}\n')
    (tmp_path / "main.c").write_text("void greet(void);\nint main(void){greet();return 0;}\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o",
                    str(tmp_path / "lib/libgreet.so.1.0"), str(tmp_path / "greet.c")], check=True)
    os.symlink("libgreet.so.1.0", tmp_path / "lib/libgreet.so.1")
    os.symlink("libgreet.so.1", tmp_path / "lib/libgreet.so")
    tags = "-Wl,--enable-new-dtags" if new_dtags else "-Wl,--disable-new-dtags"
    subprocess.run([gcc, "-o", str(tmp_path / "bin/prog"), str(tmp_path / "main.c"),
                    f"-L{tmp_path / 'lib'}", "-lgreet", f"-Wl,-rpath,{rpath}", tags], check=True)
    return tmp_path / "bin/prog"


@pytest.mark.parametrize("new_dtags", [True, False], ids=["runpath", "rpath"])
def test_closure_origin_run_path_matches_ldd(tmp_path, new_dtags):
    prog = _build_rpath_program(tmp_path, "$ORIGIN/../lib", new_dtags=new_dtags)
    info = read_elf_info(prog)
    assert (info.runpath if new_dtags else info.rpath) == ["$ORIGIN/../lib"]
    closure = resolve_closure([f"{prog}:/app/bin/prog"])
    assert closure_libraries(closure) == _oracle(prog)
    lib = next(e for e in closure.entries if e.soname == "libgreet.so.1")
    # found through the program's own run path: it stays where $ORIGIN/../lib points
    assert lib.via == ("runpath" if new_dtags else "rpath")
    assert lib.guest == "/app/lib/libgreet.so.1"
    assert lib.source == str(tmp_path / "lib/libgreet.so.1.0")
    assert lib.needed_by == ["/app/bin/prog"]
    # at the default guest path /prog, $ORIGIN/../lib is /lib (OSv canonicalises /..)
    closure = resolve_closure([prog])
    assert next(e for e in closure.entries if e.soname == "libgreet.so.1").guest == "/lib/libgreet.so.1"


def test_library_path_and_missing_library(tmp_path):
    prog = _build_rpath_program(tmp_path, "/nonexistent-dir")
    with pytest.raises(MissingLibraryError) as exc:
        resolve_closure([prog])
    msg = str(exc.value)
    assert "libgreet.so.1" in msg and "/prog" in msg and str(prog) in msg
    assert "\n" not in msg
    closure = resolve_closure([prog], allow_missing=True)
    assert [m.soname for m in closure.missing] == ["libgreet.so.1"]
    closure = resolve_closure([prog], library_path=[tmp_path / "lib"])
    lib = next(e for e in closure.entries if e.soname == "libgreet.so.1")
    assert lib.via == "library-path" and lib.guest == "/usr/lib/libgreet.so.1"
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path / "lib"))
    out = subprocess.run(["ldd", str(prog)], capture_output=True, text=True, env=env).stdout
    assert str(tmp_path / "lib/libgreet.so.1") in out


def test_needed_cycle_terminates(tmp_path):
    gcc = _gcc()
    (tmp_path / "a.c").write_text("int b(void); int a(void){return 1;}\n")
    (tmp_path / "b.c").write_text("int a(void); int b(void){return a();}\n")
    (tmp_path / "main.c").write_text("int b(void); int main(void){return b();}\n")
    d = str(tmp_path)
    # liba needs libb, libb needs liba: link liba first against an empty stub of libb
    (tmp_path / "stub.c").write_text("")
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libb.so", "-o", f"{d}/libb.so",
                    f"{d}/stub.c"], check=True)
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,liba.so", "-Wl,--no-as-needed",
                    "-o", f"{d}/liba.so", f"{d}/a.c", f"-L{d}", "-lb"], check=True)
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libb.so", "-Wl,--no-as-needed",
                    "-o", f"{d}/libb.so", f"{d}/b.c", f"-L{d}", "-la"], check=True)
    # DT_RPATH (not RUNPATH): it applies to the libraries' own needs too (glibc's chain)
    subprocess.run([gcc, "-o", f"{d}/prog", f"{d}/main.c", f"-L{d}", "-lb",
                    f"-Wl,-rpath,{d}", "-Wl,--disable-new-dtags"], check=True)
    assert read_elf_info(f"{d}/liba.so").needed[0] == "libb.so"
    assert "liba.so" in read_elf_info(f"{d}/libb.so").needed
    closure = resolve_closure([f"{d}/prog"])
    assert closure_libraries(closure) == _oracle(f"{d}/prog") == {
        "liba.so": f"{d}/liba.so", "libb.so": f"{d}/libb.so"}
    b = next(e for e in closure.entries if e.soname == "libb.so")
    a = next(e for e in closure.entries if e.soname == "liba.so")
    assert b.needed_by == ["/prog", "/usr/lib/liba.so"] and a.needed_by == ["/usr/lib/libb.so"]


def _pyelftools_info(path):
    """DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH and PT_INTERP read by pyelftools."""
    from elftools.elf.elffile import ELFFile
    out = {"needed": [], "soname": None, "rpath": None, "runpath": None, "interp": None}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        out["type"], out["machine"] = elf["e_type"], elf["e_machine"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                out["interp"] = seg.get_interp_name()
            elif seg["p_type"] == "PT_DYNAMIC":
                for tag in seg.iter_tags():
                    t = tag.entry.d_tag
                    if t == "DT_NEEDED":
                        out["needed"].append(tag.needed)
                    elif t == "DT_SONAME":
                        out["soname"] = tag.soname
                    elif t in ("DT_RPATH", "DT_RUNPATH"):
                        key = t[3:].lower()
                        out[key] = (out[key] or []) + getattr(tag, key).split(":")
    return out


def test_elf_reader_agrees_with_pyelftools(tmp_path):
    files = sorted(Path("/usr/lib/python3.11/lib-dynload").glob("*.so"))[:30]
    files += [Path(p) for p in ("/usr/bin/python3.11", "/usr/bin/qemu-img", "/bin/ls")
              if os.path.exists(p)]
    files.append(_build_rpath_program(tmp_path, "$ORIGIN/../lib:/x/$LIB"))
    files.append(tmp_path / "lib/libgreet.so.1.0")
    assert len(files) > 5
    for path in files:
        info = read_elf_info(path)
        got = {"needed": info.needed, "soname": info.soname, "rpath": info.rpath,
               "runpath": info.runpath, "interp": info.interp, "type": info.type,
               "machine": info.machine}
        assert got == _pyelftools_info(path), path


# --- clear errors -----------------------------------------------------------------------
def _elf_header(ei_class: int, machine: int) -> bytes:
    """A minimal ELF header (only the fields the reader checks are meaningful)."""
    ident = b"\x7fELF" + bytes([ei_class, 1, 1]) + bytes(9)
    size = 64 if ei_class == 2 else 52
    return (ident + (3).to_bytes(2, "little") + machine.to_bytes(2, "little")
            + (1).to_bytes(4, "little") + bytes(size - 24))


def test_elf_errors(tmp_path):
    cases = {
        "elf32": (_elf_header(1, 3), r"a 32-bit ELF file \(ELFCLASS32\), expected a 64-bit x86-64"),
        "arm64": (_elf_header(2, 183), r"an ELF file for aarch64 \(EM_AARCH64\), expected a 64-bit x86-64"),
        "script.sh": (b"#!/bin/sh\necho hi\n", r"a script \(#!/bin/sh\), not an ELF file"),
        "trunc": (Path("/usr/bin/python3.11").read_bytes()[:4096], r"truncated: segment \d+ \(PT_LOAD\)"),
        "short": (b"\x7fELF\x02\x01\x01" + bytes(20), r"truncated ELF header: 27 bytes"),
        "text": (b"hello", r"not an ELF file \(starts with b'hell'\)"),
    }
    for name, (data, pattern) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(FormatError) as exc:
            read_elf_info(p)
        assert re.search(pattern, str(exc.value)), (name, str(exc.value))
        assert str(exc.value).startswith(f"{p}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize("name,data,message", [
    ("elf32", _elf_header(1, 3), "a 32-bit ELF file (ELFCLASS32)"),
    ("arm64", _elf_header(2, 183), "an ELF file for aarch64 (EM_AARCH64)"),
    ("run.sh", b"#!/bin/sh\necho hi\n", "a script (#!/bin/sh), not an ELF file"),
])
def test_cli_app_errors(cli, tmp_path, probe_elf, name, data, message):
    p = tmp_path / name
    p.write_bytes(data)
    r = cli("build", probe_elf, "--app", p, "-o", tmp_path / "usr.img")
    err = r.stderr.decode()
    assert r.returncode in (65, 66), err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "usr.img").exists()


def test_cli_missing_library(cli, tmp_path, probe_elf):
    prog = _build_rpath_program(tmp_path, "/nonexistent-dir")
    r = cli("build", probe_elf, "--app", prog, "-o", tmp_path / "usr.img")
    err = r.stderr.decode()
    assert r.returncode == 66, err
    assert re.search(r"error: libgreet\.so\.1: library libgreet\.so\.1 needed by /prog "
                     r"\(.*/bin/prog\) not found, expected .*--allow-missing", err), err
    assert not (tmp_path / "usr.img").exists()
    r = cli("build", probe_elf, "--app", prog, "--allow-missing", "-o", tmp_path / "usr.img")
    assert r.returncode == 0, r.stderr.decode()
    assert "library libgreet.so.1 needed by /prog" in r.stderr.decode()


# --- $ORIGIN, $LIB, $PLATFORM ---------------------------------------------------------
def test_expand_dst():
    assert expand_dst("$ORIGIN/../lib", "/a/bin") == "/a/bin/../lib"
    assert expand_dst("${ORIGIN}/x:$LIB", "/o") == "/o/x:lib/x86_64-linux-gnu"
    assert expand_dst("/p/$PLATFORM/$ORIGINAL", "/o") == "/p/x86_64/$ORIGINAL"


def test_lib_token_matches_ldd(tmp_path):
    prog = _build_rpath_program(tmp_path, str(tmp_path / "$LIB"))
    multi = tmp_path / "lib/x86_64-linux-gnu"
    multi.mkdir()
    shutil.copy(tmp_path / "lib/libgreet.so.1.0", multi / "libgreet.so.1")
    closure = resolve_closure([prog])
    assert closure_libraries(closure) == _oracle(prog)
    assert closure_libraries(closure)["libgreet.so.1"] == str(multi / "libgreet.so.1")


# --- ld.so.cache ----------------------------------------------------------------------
def _cache_bytes(entries, hwcaps=()):
    """A glibc-ld.so.cache1.1 file built with the schema (entries: name, path, flags, hwcap)."""
    strings = bytearray()
    nlibs = len(entries)
    base = S.HEADER_SIZE + nlibs * S.ENTRY_SIZE

    def add(s: str) -> int:
        off = base + len(strings)
        strings.extend(s.encode() + b"\0")
        return off

    rows = [dict(flags=f, key=add(n), value=add(p), osversion=0, hwcap=h)
            for n, p, f, h in entries]
    ext = b""
    if hwcaps:
        offs = [add(h) for h in hwcaps]
        ext_off = base + len(strings)
        table_off = ext_off + 8 + 16
        ext = (S.extension_dir_c.build(dict(count=1))
               + S.extension_section_c.build(dict(tag=1, flags=0, offset=table_off,
                                                  size=4 * len(offs)))
               + b"".join(S.u32_c.build(o) for o in offs))
    head = S.header_c.build(dict(nlibs=nlibs, len_strings=len(strings), flags=2,
                                 padding=bytes(3), extension_offset=base + len(strings) if hwcaps else 0,
                                 unused=[0, 0, 0]))
    return head + b"".join(S.entry_c.build(r) for r in rows) + bytes(strings) + ext


def test_ld_cache_exact_bytes_and_round_trip():
    data = _cache_bytes([("libz.so.1", "/lib/libz.so.1", 0x303, 0)])
    assert data[:20] == b"glibc-ld.so.cache1.1"
    assert data[20:24] == (1).to_bytes(4, "little") and data[28] == 2
    assert data[48:52] == (0x303).to_bytes(4, "little")
    assert data[52:56] == (72).to_bytes(4, "little")       # the name follows the one entry
    assert data[72:82] == b"libz.so.1\0"
    head = S.header_c.parse(data[:48])
    assert S.header_c.build(head) == data[:48]
    cache = parse_ld_cache(data, "t")
    assert [(e.name, e.path, e.flags, e.hwcaps) for e in cache.entries] == [
        ("libz.so.1", "/lib/libz.so.1", 0x303, None)]


def test_ld_cache_hwcaps_entries_are_skipped():
    data = _cache_bytes([("libx.so.1", "/v3/libx.so.1", 0x303, S.HWCAP_EXTENSION | 0),
                         ("libx.so.1", "/base/libx.so.1", 0x303, 0),
                         ("liby.so.1", "/arm/liby.so.1", 0xA03, 0)], hwcaps=["x86-64-v3"])
    cache = parse_ld_cache(data, "t")
    assert cache.entries[0].hwcaps == "x86-64-v3"
    assert cache.lookup("libx.so.1") == "/base/libx.so.1"
    assert cache.lookup("liby.so.1") is None
    assert cache.lookup("liby.so.1", "EM_AARCH64") == "/arm/liby.so.1"


def test_ld_cache_bad_input():
    good = _cache_bytes([("libz.so.1", "/lib/libz.so.1", 0x303, 0)])
    for data, pattern in [(good[:30], "truncated: 30 bytes"),
                          (b"X" * 64, "bad magic"),
                          (good[:60], "truncated: 1 entries need 72 bytes"),
                          (good[:48] + good[48:52] + (9999).to_bytes(4, "little") + good[56:],
                           "name string offset 0x270f is outside the file")]:
        with pytest.raises(FormatError, match=pattern):
            parse_ld_cache(data, "c")


def test_host_ld_cache_matches_ldconfig():
    if not os.path.exists("/etc/ld.so.cache") or shutil.which("ldconfig") is None:
        missing_tool("no /etc/ld.so.cache or ldconfig")
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    oracle = [m.groups() for m in re.finditer(r"^\t(\S+) \((.*?)\) => (\S+)$", out, re.M)]
    cache = load_ld_cache()
    assert len(cache.entries) == len(oracle)
    assert [(e.name, e.path) for e in cache.entries] == [(n, p) for n, _, p in oracle]


# --- supplied sonames -----------------------------------------------------------------
def test_supplied_from_kernel_rodata(tmp_path):
    gcc = _gcc()

    def kernel(names):
        src = tmp_path / "k.c"
        arr = ", ".join(f'"{n}"' for n in names)
        src.write_text(f"const char *const supplied[] = {{{arr}}};\n"
                       "const char *f(int i){return supplied[i];}\n")
        out = tmp_path / "k.so"
        subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(out), str(src)], check=True)
        return out

    hidden = sorted(DEFAULT_SUPPLIED)
    s = supplied_sonames(kernel(hidden))
    assert s.names == frozenset(DEFAULT_SUPPLIED) and s.source.startswith("kernel ")
    s = supplied_sonames(kernel(hidden + ["libstdc++.so.6"]))
    assert "libstdc++.so.6" in s
    # a name that only ends a longer string does not count
    s = supplied_sonames(kernel(hidden + ["xlibstdc++.so.6"]))
    assert "libstdc++.so.6" not in s
    # not an OSv kernel: the documented default
    assert supplied_sonames(kernel(["libc.so.6"])).source.startswith("default (")
    assert supplied_sonames(None) == default()
    assert "libstdc++.so.6" not in DEFAULT_SUPPLIED and "libc.so.6" in DEFAULT_SUPPLIED


def test_resolver_skips_foreign_candidates(tmp_path):
    """A file of the right name but the wrong class is skipped, as glibc skips it."""
    prog = _build_rpath_program(tmp_path, str(tmp_path / "first") + ":" + str(tmp_path / "lib"),
                                new_dtags=False)
    (tmp_path / "first").mkdir()
    (tmp_path / "first/libgreet.so.1").write_bytes(_elf_header(1, 3) + bytes(1024))
    r = Resolver(supplied=default())
    r.add_app(str(prog), "/prog")
    lib = next(e for e in r.result().entries if e.soname == "libgreet.so.1")
    assert lib.host == str(tmp_path / "lib/libgreet.so.1")
    assert closure_libraries(resolve_closure([prog])) == _oracle(prog)

"""Console parsers (bootchart, failure patterns, expected line), image detection, the
verdict rules and the timeline plot (read back as PNG and SVG)."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib

import pytest

from osvkit import verify as V
from osvkit.errors import FormatError, MissingInputError, UsageError
from osvkit.plot import PALETTE, Phase, TimelineRow, plot_timeline, render_png, render_svg

# An OSv console with --bootchart, shaped after core/chart.cc print_chart:
# "\t<name>: <ms since event 0>ms, (+<ms since previous>ms)", events 1.. in order.
BOOTCHART_CONSOLE = (
    "OSv v0.57.0-91-g98c90f03\r\n"
    "\tdisk read (real mode): 58.62ms, (+58.62ms)\r\n"
    "\tuncompress lzloader.elf: 60.20ms, (+1.58ms)\r\n"
    "\tTLS initialization: 60.80ms, (+0.60ms)\r\n"
    "\t.init functions: 62.74ms, (+1.94ms)\r\n"
    "\tSMP launched: 64.08ms, (+1.34ms)\r\n"
    "\tVFS initialized: 66.09ms, (+2.01ms)\r\n"
    "\tpci enumerated: 78.97ms, (+12.88ms)\r\n"
    "\tdrivers probe: 78.97ms, (+0.00ms)\r\n"
    "\tdrivers loaded: 160.37ms, (+81.40ms)\r\n"
    "\tROFS mounted: 162.36ms, (+1.99ms)\r\n"
    "\tTotal time: 178.15ms, (+15.79ms)\r\n"
    "Cmdline: /hello\r\n"
    "Hello from C code\r\n"
)

# Without --bootchart OSv prints one line (core/chart.cc, loader.cc:697-701).
PLAIN_CONSOLE = "OSv v0.57.0\nBooted up in 154.83 ms\nCmdline: /hello\nHello from C code\n"

FAILED_CONSOLE = (
    "OSv v0.57.0\n"
    "Booted up in 150.21 ms\n"
    "Cmdline: /nosuch\n"
    "Failed to load object: /nosuch. Powering off.\n"
)

ASSERT_CONSOLE = (
    "OSv v0.57.0\n"
    "Assertion failed: ret == 0 (core/mmu.cc: map_file: 1234)\n"
    "\n"
    "[backtrace]\n"
    "0x000000004022e4b4 <__assert_fail+20>\n"
    "Aborted\n"
)


def test_bootchart_exact():
    t = V.parse_bootchart(BOOTCHART_CONSOLE)
    assert [(p.name, p.at_ms, p.delta_ms) for p in t.phases] == [
        ("disk read (real mode)", 58.62, 58.62),
        ("uncompress lzloader.elf", 60.20, 1.58),
        ("TLS initialization", 60.80, 0.60),
        (".init functions", 62.74, 1.94),
        ("SMP launched", 64.08, 1.34),
        ("VFS initialized", 66.09, 2.01),
        ("pci enumerated", 78.97, 12.88),
        ("drivers probe", 78.97, 0.00),
        ("drivers loaded", 160.37, 81.40),
        ("ROFS mounted", 162.36, 1.99),
        ("Total time", 178.15, 15.79),
    ]
    assert t.booted_up_ms is None
    assert t.total_ms == 178.15
    assert t.phases[1].start_ms == 58.62
    assert t.to_dict()["phases"][0] == {"name": "disk read (real mode)", "at_ms": 58.62,
                                        "delta_ms": 58.62}


def test_booted_up_in():
    t = V.parse_bootchart(PLAIN_CONSOLE)
    assert t.phases == [] and t.booted_up_ms == 154.83 and t.total_ms == 154.83
    assert V.parse_bootchart("Booted up in 3 ms\n").booted_up_ms == 3.0


def test_bootchart_ignores_lookalikes():
    # an app line that looks like a phase but is not indented is not a bootchart line
    t = V.parse_bootchart("stats: 12ms, (+3ms)\n\tSkipping bootchart\n")
    assert t.phases == [] and t.booted_up_ms is None and t.total_ms is None


def test_failure_patterns_exact():
    assert V.FAILURE_PATTERNS == ("Assertion failed", "Aborted", "[backtrace]",
                                  "Failed to load object", "exception")
    got = [(f.line, f.pattern) for f in V.scan_failures(ASSERT_CONSOLE)]
    assert got == [(2, "Assertion failed"), (4, "[backtrace]"), (6, "Aborted")]
    got = [(f.line, f.pattern, f.text) for f in V.scan_failures(FAILED_CONSOLE)]
    assert got == [(4, "Failed to load object", "Failed to load object: /nosuch. Powering off.")]
    assert V.scan_failures(BOOTCHART_CONSOLE) == []
    assert V.scan_failures(PLAIN_CONSOLE) == []
    assert [f.line for f in V.scan_failures("ok\nuncaught exception: x\n")] == [2]
    assert V.scan_failures("Exception in caps\n") == []   # case-sensitive, like OSv's scripts
    assert [f.pattern for f in V.scan_failures("oops: bad\n", V.FAILURE_PATTERNS + ("oops",))] \
        == ["oops"]


def test_find_expected():
    assert V.find_expected(BOOTCHART_CONSOLE, r"^Hello from") == "Hello from C code"
    assert V.find_expected(PLAIN_CONSOLE, r"Booted up in \d+") == "Booted up in 154.83 ms"
    assert V.find_expected(PLAIN_CONSOLE, r"^Goodbye") is None


def test_detect_kind(tmp_path):
    mbr = tmp_path / "usr.img"
    mbr.write_bytes(bytes(510) + b"\x55\xaa" + bytes(512))
    qcow = tmp_path / "usr.qcow2"
    qcow.write_bytes(b"QFI\xfb" + bytes(100))
    elf = tmp_path / "k.elf"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(100))
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello")
    assert V.detect_kind(mbr) == "usr"
    assert V.detect_kind(qcow) == "usr"
    assert V.detect_kind(elf) == "vmlinux"
    with pytest.raises(FormatError, match=r"junk: not a bootable image \(starts 68656c6c\), "
                                          r"expected a usr.img"):
        V.detect_kind(junk)
    with pytest.raises(MissingInputError, match="no such file"):
        V.detect_kind(tmp_path / "none")


def _check(status="pass", image="a.img", **kw):
    return V.BootCheck(image=image, name=image, kind="usr", vmm="qemu", status=status, **kw)


def test_verdict_rules():
    assert V.VerifyResult([_check()]).passed
    assert not V.VerifyResult([]).passed
    assert not V.VerifyResult([_check(), _check("fail", "b.img")]).passed
    # an image whose every boot was skipped has not passed
    assert not V.VerifyResult([_check(), _check("skip", "b.img")]).passed
    # one skipped backend next to a passing one is fine
    assert V.VerifyResult([_check(), _check("skip")]).passed
    r = V.VerifyResult([_check(), _check("skip"), _check("fail", "c.img")])
    assert r.summary() == {"boots": 3, "passed": 1, "failed": 1, "skipped": 1}


def test_vmm_choice():
    assert V._vmms_for("usr", None) == (("qemu",), False)
    assert V._vmms_for("vmlinux", None) == (("qemu-pvh", "qemu-fc"), False)
    assert V._vmms_for("vmlinux", ["qemu-fc"]) == (("qemu-fc",), True)
    with pytest.raises(UsageError, match="a usr.img boots only with qemu"):
        V._vmms_for("usr", ["qemu-fc"])
    with pytest.raises(UsageError, match="a vmlinux ELF boots with qemu-pvh, qemu-fc or "
                                         "firecracker, not qemu"):
        V._vmms_for("vmlinux", ["qemu"])
    with pytest.raises(UsageError, match="unknown VMM 'xen'"):
        V._vmms_for("vmlinux", ["xen"])


def test_phases_for_plot():
    c = _check(timing=V.parse_bootchart(BOOTCHART_CONSOLE))
    assert c.phases_ms()[:2] == [("disk read (real mode)", 0.0, 58.62),
                                 ("uncompress lzloader.elf", 58.62, 60.2)]
    assert _check(timing=V.parse_bootchart(PLAIN_CONSOLE)).phases_ms() == [
        ("booted up (guest)", 0.0, 154.83)]
    assert _check(boot_done_s=0.25).phases_ms() == [("boot-done (host)", 0.0, 250.0)]


# --------------------------------------------------------------------------------------
# The plot, read back
# --------------------------------------------------------------------------------------

def _rows():
    c = _check(timing=V.parse_bootchart(BOOTCHART_CONSOLE))
    return [TimelineRow("hello.img (qemu)", [Phase(*p) for p in c.phases_ms()], note="PASS"),
            TimelineRow("hello.elf (qemu-pvh)", [Phase("boot-done (host)", 0, 95.3)],
                        note="PASS")]


def _png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_png_reads_back(tmp_path):
    out = tmp_path / "boot.png"
    assert plot_timeline(_rows(), out) == "png"
    data = out.read_bytes()
    chunks = _png_chunks(data)
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, ctype, comp, filt, interlace) == (8, 2, 0, 0, 0)
    assert 600 < width < 2000 and 100 < height < 1000
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + 3 * width)
    rows = [raw[y * (1 + 3 * width):(y + 1) * (1 + 3 * width)] for y in range(height)]
    assert all(r[0] == 0 for r in rows)                 # filter type 0 on every scanline
    pixels = {bytes(r[1 + 3 * x:4 + 3 * x]) for r in rows for x in range(width)}
    assert bytes(PALETTE[0]) in pixels                  # the first phase's colour
    assert bytes((255, 255, 255)) in pixels and bytes((0, 0, 0)) in pixels   # paper and ink
    # deterministic
    assert render_png(_rows()) == data


def test_svg_reads_back(tmp_path):
    out = tmp_path / "boot.svg"
    assert plot_timeline(_rows(), out) == "svg"
    root = ET.fromstring(out.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for name in ("disk read (real mode)", "drivers loaded", "Total time", "boot-done (host)",
                 "hello.img (qemu)", "hello.elf (qemu-pvh)"):
        assert name in texts
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "drivers loaded: 78.97-160.37 ms" in titles
    assert render_svg(_rows()) == out.read_text()


def test_plot_escapes_and_rejects_unknown_format(tmp_path):
    rows = [TimelineRow("<a&b>", [Phase("x<y", 0, 1)])]
    ET.fromstring(render_svg(rows))     # parses: names are escaped
    with pytest.raises(UsageError, match="expected a file name ending in .png or .svg"):
        plot_timeline(rows, tmp_path / "boot.jpg")
    assert not (tmp_path / "boot.jpg").exists()


def test_format_result_lines():
    c = _check(timing=V.parse_bootchart(BOOTCHART_CONSOLE))
    f = _check("fail", "b.img", reasons=["guest ended by timeout"], boot_done_s=None)
    text = V.format_result(V.VerifyResult([c, f]))
    assert text.splitlines() == [
        "PASS a.img [qemu] boot 178.15 ms (guest)",
        "FAIL b.img [qemu]",
        "     guest ended by timeout",
        "FAILED: 1 passed, 1 failed, 0 skipped of 2 boots",
    ]
    assert V.VerifyResult([c, f]).describe() == text


def test_build_file_boots_pass_the_images_cmdline_model(tmp_path, monkeypatch):
    """A vmlinux boot of a build-file image gets that image's ``Cmdline`` (the one model, as
    the builders got it); a --cmdline flag still wins; the backend sees the text."""
    from osvkit.cmdline import Cmdline

    (tmp_path / "osvkit.toml").write_text(
        'spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\n'
        'cmdline.options = ["--verbose"]\ncmdline.app = ["/hello", "a b"]\n'
        '[image.outputs]\nvmlinux = "a.elf"\n'
        '[[image]]\nname = "b"\nkernel = "probe"\n[image.outputs]\nvmlinux = "b.elf"\n')
    for name in ("a.elf", "b.elf"):
        (tmp_path / name).write_bytes(b"\x7fELF")
    seen = []
    monkeypatch.setattr(V, "run_checks", lambda requests, *a, **k: seen.extend(requests))
    loaded = []
    real_load = V.load_build_file
    monkeypatch.setattr(V, "load_build_file", lambda p: loaded.append(real_load(p)) or loaded[-1])
    V.verify_build_file(tmp_path / "osvkit.toml", vmms=["qemu-pvh"])
    a, b = seen
    assert a.cmdline is loaded[0].images[0].cmdline and isinstance(a.cmdline, Cmdline)
    assert a.cmdline.options == ("--verbose",) and a.cmdline.command == '/hello "a b"'
    assert b.cmdline is None
    assert V._spec(a, "qemu-pvh").cmdline == '--verbose /hello "a b"'
    seen.clear()
    V.verify_build_file(tmp_path / "osvkit.toml", vmms=["qemu-pvh"], flags={"cmdline": "/x  y"})
    assert [str(r.cmdline) for r in seen] == ["/x  y", "/x  y"]
    assert isinstance(seen[0].cmdline, Cmdline) and V._spec(seen[1], "qemu-pvh").line == "/x  y"


# --------------------------------------------------------------------------------------
# Real boots (few and short)
# --------------------------------------------------------------------------------------

@pytest.mark.qemu
def test_a_guest_that_never_finishes_fails_by_timeout(tmp_path, qemu):
    from osvkit.image.usrimg import build_usr_image
    from test_buildfile import tiny_kernel

    kernel = tmp_path / "k.elf"
    kernel.write_bytes(tiny_kernel())            # start32 is 'hlt; jmp': it never reports
    build_usr_image(kernel, tmp_path / "hang.img", cmdline="--verbose /hang")
    result = V.verify_images([tmp_path / "hang.img"], flags={"timeout": "3"}, env={},
                             plot=tmp_path / "t.svg")
    (check,) = result.checks
    assert (check.vmm, check.status, check.exit_reason) == ("qemu", "fail", "timeout")
    assert check.reasons == ["guest ended by timeout"]
    assert check.probe is None and check.boot_done_s is None
    assert 3.0 <= check.elapsed_s < 10
    assert not result.passed
    ET.parse(tmp_path / "t.svg")


@pytest.mark.qemu
def test_probe_boot_reports_tsc_and_expectation(tmp_path, qemu):
    from osvkit.image.usrimg import build_usr_image
    from osvkit.probe import write_probe

    write_probe(tmp_path / "probe.elf")
    build_usr_image(tmp_path / "probe.elf", tmp_path / "p.img", cmdline="--nopci /hello x")
    result = V.verify_images([tmp_path / "p.img"], env={}, flags={"timeout": "30"})
    (check,) = result.checks
    assert check.status == "pass", check.reasons
    assert check.exit_reason == "poweroff" and check.probe["complete"] is True
    assert check.probe["cmdline"] == "--nopci /hello x"
    tsc = check.probe["tsc"]
    assert tsc["init"] < tsc["disk_done"] <= tsc["uncompress_done"]
    assert tsc["disk_read_ticks"] == tsc["disk_done"] - tsc["init"]
    assert check.boot_done_s is not None and check.boot_done_s < check.elapsed_s
    # a regex expectation stops the run at the first matching line
    result = V.verify_images([tmp_path / "p.img"], expect=r"^probe\.cmdline", env={},
                             flags={"timeout": "30"})
    (check,) = result.checks
    assert check.status == "pass", check.reasons
    assert check.exit_reason == "expect" and check.expect_line.startswith("probe.cmdline")


def test_all_backends_missing_is_a_tool_error(tmp_path, monkeypatch):
    from osvkit.errors import EX_SOFTWARE, ToolError
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("OSVKIT_QEMU", raising=False)
    elf = tmp_path / "k.elf"
    elf.write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(ToolError) as info:
        V.verify_images([elf], env={})
    assert info.value.exit_status == EX_SOFTWARE
    assert str(info.value) == ("no run backend could boot any image: qemu-system-x86_64 is not "
                               "installed, expected QEMU installed (install.sh) or --vmm naming "
                               "one that is")
    # named explicitly, a missing backend is a failed boot instead
    result = V.verify_images([elf], vmms=["qemu-fc"], env={})
    assert [c.status for c in result.checks] == ["fail"] and not result.passed


def test_bootchart_skipped_under_a_clock_without_conversion():
    """OSv under TCG (HPET clock): no chart, 'Booted up in 0.00 ms' is not a measurement."""
    from osvkit.verify import parse_bootchart

    console = ("OSv v0.57.0-398-g0e34e4dc\n"
               "Skipping bootchart: please run this with a clocksource that can do "
               "ticks/nanoseconds conversion.\n"
               "Booted up in 0.00 ms\nCmdline: /hello\nHello from C code\n")
    t = parse_bootchart(console)
    assert t.chart_skipped and t.phases == [] and t.booted_up_ms == 0.0
    assert t.total_ms is None
    assert parse_bootchart("Booted up in 0.00 ms\n").total_ms is None
    assert parse_bootchart("Booted up in 12.50 ms\n").total_ms == 12.5

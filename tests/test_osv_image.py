"""osvkit reading, and rebuilding, an image made by OSv's own ``scripts/build``.

Needs ``OSVKIT_OSV_IMAGE`` (OSv's usr.img, e.g. ``scripts/build image=native-example
fs=rofs``) and ``OSVKIT_KERNEL`` (the ``loader-stripped.elf`` of the same OSv build); both
skip when unset.

* ``osvkit kernel extract`` gives back that kernel byte for byte;
* an osvkit build of the same kernel, command line, container format, virtual size and ROFS
  partition differs from OSv's image in the boot path only (``osvkit diff``), and a rebuild of
  the same tree from a manifest (in a different order) has the same files -- and both boot
  real OSv under QEMU (TCG) and print what OSv's own image prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.osv]


def _app_output(console: str) -> list[str]:
    """The console lines after OSv's ``Cmdline:`` line: what the program printed."""
    lines = [ln.rstrip("\r") for ln in console.splitlines()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Cmdline: ")]
    assert starts, console[-2000:]
    return [ln for ln in lines[starts[0] + 1:] if ln]


def _manifest_of(image: Path, tree: Path) -> str:
    """usr.manifest lines re-creating the ROFS of ``image`` (extracted into ``tree``),
    in reverse of its order."""
    from osvkit.diff import image_facts

    (rofs,) = image_facts(image)["rofs"].values()
    lines = []
    for path, e in reversed(list(rofs.items())):
        if path == "/":
            continue
        if e["type"] == "symlink":
            lines.append(f"{path}: ->{e['target']}")
        else:
            lines.append(f"{path}: {tree}{path}")
    return "\n".join(lines) + "\n"


def test_kernel_extract_gives_back_the_kernel(cli, osv_kernel, osv_image, tmp_path):
    out = tmp_path / "k.elf"
    r = cli("kernel", "extract", osv_image, "-o", out, "--json")
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(r.stdout)
    assert (d["boot"], d["payload"]) == ("osv-boot16", "osv-lzloader"), d
    assert out.read_bytes() == osv_kernel.read_bytes(), \
        "OSVKIT_OSV_IMAGE must come from the same OSv build as OSVKIT_KERNEL"


def test_rebuild_differs_in_the_boot_path_only_and_boots(cli, osv_kernel, osv_image, qemu,
                                                         tmp_path):
    from osvkit.diff import diff_images, image_facts
    from osvkit.disk import open_disk
    from osvkit.disk.partitions import partition_extent
    from osvkit.run import run_image

    facts = image_facts(osv_image)
    (number,) = facts["partitions"]
    with open_disk(osv_image) as disk:
        ext = partition_extent(disk, int(number))       # an MBR entry, 0-3
        (tmp_path / "rofs.img").write_bytes(disk.read(ext.offset, ext.size))
    common = ["--cmdline", facts["cmdline"], "--image-format", facts["format"],
              "--size", str(facts["virtual_size"]), "-q"]
    same = tmp_path / "same-partition.img"
    r = cli("build", osv_kernel, "--partition", tmp_path / "rofs.img", "-o", same, *common)
    assert r.returncode == 0, r.stderr.decode()
    r = cli("rofs", "extract", osv_image, tmp_path / "tree", "-p", number)
    assert r.returncode == 0, r.stderr.decode()
    (tmp_path / "usr.manifest").write_text(_manifest_of(osv_image, tmp_path / "tree"))
    rebuilt = tmp_path / "same-tree.img"
    r = cli("build", osv_kernel, "--manifest", tmp_path / "usr.manifest", "-o", rebuilt, *common)
    assert r.returncode == 0, r.stderr.decode()

    for img in (same, rebuilt):
        d = diff_images(osv_image, img)
        assert {c["field"] for c in d.changes} == {"boot.boot_sector", "boot.loader"}, d.changes
        (tree,) = d.trees
        assert not (tree.added or tree.removed or tree.changed), tree
        r = cli("diff", osv_image, img)
        assert r.returncode == 1 and r.stdout.decode().splitlines()[2:] == [
            "boot.boot_sector: 'osv-boot16' -> 'osvkit-boot16'",
            "boot.loader: 'osv-lzloader' -> 'osvkit-lz'"], r.stdout.decode()
    r = cli("diff", same, rebuilt)              # the same tree, in another order
    assert r.returncode == 0, r.stdout.decode()

    theirs = run_image(osv_image, memory="512M", timeout=240)
    assert theirs.exit_reason == "poweroff", theirs.console[-3000:]
    expected = _app_output(theirs.console)
    assert expected, theirs.console[-3000:]
    for img in (same, rebuilt):
        res = run_image(img, memory="512M", timeout=240)
        assert res.exit_reason == "poweroff", res.console[-3000:]
        assert _app_output(res.console) == expected

"""``osvkit diff A B``: what changed between two images.

:func:`image_facts` reads what matters about one file, and :func:`diff_images` compares two:

* a disk image (raw or qcow2, osvkit's or OSv's): the boot path (the boot sector's kind and
  the loader at LBA 128: osvkit's decompressor, OSv's ``lzloader.elf``, an uncompressed
  kernel), the command line, the kernel (size, SHA-256, the ``OSv v0.57.0-...`` version
  string, entry points, ELF notes), the partitions (entry, type, offset, size, filesystem)
  and, for each ROFS partition, its tree: every path with its type, and a file's size and
  SHA-256 or a symlink's target (file data is hashed a range at a time, never held whole);
* a kernel ELF: the kernel;
* a ROFS image: its tree.

The result lists the fields that differ and, per ROFS, the paths added, removed and
changed.  ``identical`` is True when nothing differs (``osvkit diff`` then exits 0, else 1,
like ``diff``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from . import layout
from .boot import boot16
from .disk import open_disk
from .disk.partitions import parse_partition_table, read_mbr
from .errors import FormatError, KernelError
from .fileio import read_head
from .image import filesystems
from .image.kernel import check_kernel, osv_version

HASH_CHUNK = 1 << 20
ELF_MAGIC = b"\x7fELF"


# ------------------------------------------------------------------------------------------
# facts about one file
# ------------------------------------------------------------------------------------------
def kernel_facts(data: bytes) -> dict:
    """Size, SHA-256, OSv version, entry points and notes of a kernel ELF."""
    facts = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "osv_version": osv_version(data)}
    try:
        k = check_kernel(data)
    except KernelError as exc:
        facts["error"] = exc.what
        return facts
    facts.update(entry=k.entry, start32=k.start32, pvh_entry=k.pvh_entry,
                 notes=[{"name": n["name"], "type": n["type"], "value": n.get("value")}
                        for n in k.notes])
    return facts


def rofs_tree(rofs) -> dict[str, dict]:
    """``path -> {type, size, sha256}`` (files), ``{type, target}`` (symlinks) or
    ``{type}`` (directories) for an open :class:`~osvkit.rofs.reader.RofsImage`."""
    tree = {}
    for e in rofs.entries:
        if e.type == "dir":
            tree[e.path] = {"type": "dir"}
        elif e.type == "symlink":
            tree[e.path] = {"type": "symlink", "target": e.target}
        else:
            h = hashlib.sha256()
            for off in range(0, e.size, HASH_CHUNK):
                h.update(rofs.pread(e.data_offset + off, min(HASH_CHUNK, e.size - off)))
            tree[e.path] = {"type": "file", "size": e.size, "sha256": h.hexdigest()}
    return tree


def _boot_kind(sector: bytes) -> str:
    if boot16.is_osvkit_boot16(sector):
        return "osvkit-boot16"
    return "osv-boot16" if boot16.is_osv_boot16(sector) else "unknown"


def _disk_facts(path: str) -> dict:
    from .image.extract import kernel_from_disk
    from .rofs.reader import RofsImage

    with open_disk(path) as disk:
        sector = read_mbr(disk)
        area = disk.read_upto(layout.CMDLINE_OFFSET, layout.CMDLINE_AREA_SIZE)
        fmt, size = disk.format, disk.size
        parts = {}
        for p in parse_partition_table(sector):
            if not (p.system_id or p.sector_count):
                continue
            fs = None
            if p.sector_count and p.end <= size:
                fs = filesystems.identify(disk.read_upto, p.offset, p.size)
            parts[str(p.index)] = {"system_id": p.system_id, "offset": p.offset,
                                   "size": p.size, "filesystem": fs}
    facts = {"kind": "disk-image", "format": fmt, "virtual_size": size,
             "boot": {"boot_sector": _boot_kind(sector), "loader": None},
             "cmdline": area.split(b"\0", 1)[0].decode("utf-8", "replace"),
             "kernel": None, "partitions": parts, "rofs": {}}
    try:
        ex = kernel_from_disk(path)
    except FormatError as exc:
        facts["boot"]["loader"] = "none"
        facts["boot"]["error"] = exc.what
    else:
        facts["boot"]["loader"] = ex.payload
        facts["kernel"] = kernel_facts(ex.data)
    for index, p in parts.items():
        if p["filesystem"] == "rofs":
            with RofsImage(path, partition=int(index)) as rofs:
                facts["rofs"][index] = rofs_tree(rofs)
    return facts


def image_facts(path) -> dict:
    """What :func:`diff_images` compares about ``path`` (see the module docstring)."""
    from .rofs.reader import RofsImage, detect_rofs_head
    from .disk import is_disk_head

    path = os.fspath(path)
    head = read_head(path, 4096, "an image")
    if head[:4] == ELF_MAGIC:
        from .image.extract import extract_kernel

        return {"kind": "kernel-elf", "kernel": kernel_facts(extract_kernel(path).data)}
    if detect_rofs_head(head):
        with RofsImage(path) as rofs:
            return {"kind": "rofs", "rofs": {"-": rofs_tree(rofs)}}
    if is_disk_head(head):
        return _disk_facts(path)
    raise FormatError("unrecognised file type", path=path,
                      expected="a disk image (raw or qcow2), a kernel ELF or a ROFS image")


# ------------------------------------------------------------------------------------------
# comparing
# ------------------------------------------------------------------------------------------
@dataclass
class TreeDiff:
    """The changes in one ROFS (``partition`` "-" for a bare ROFS image)."""

    partition: str
    added: dict[str, dict] = field(default_factory=dict)
    removed: dict[str, dict] = field(default_factory=dict)
    changed: dict[str, tuple[dict, dict]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict:
        return {"partition": self.partition,
                "added": [{"path": p, **v} for p, v in self.added.items()],
                "removed": [{"path": p, **v} for p, v in self.removed.items()],
                "changed": [{"path": p, "a": a, "b": b} for p, (a, b) in self.changed.items()]}


@dataclass
class DiffResult:
    a: str
    b: str
    changes: list[dict] = field(default_factory=list)
    """``{"field": "kernel.sha256", "a": ..., "b": ...}`` per differing field."""
    trees: list[TreeDiff] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.changes and all(t.identical for t in self.trees)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "identical": self.identical, "changes": self.changes,
                "rofs": [t.to_dict() for t in self.trees]}

    def describe(self) -> str:
        if self.identical:
            return f"{self.a} and {self.b} are identical (boot path, cmdline, kernel, " \
                   "partitions, files)"
        lines = [f"--- {self.a}", f"+++ {self.b}"]
        for c in self.changes:
            lines.append(f"{c['field']}: {_short(c['a'])} -> {_short(c['b'])}")
        for t in self.trees:
            where = "ROFS" if t.partition == "-" else f"partition {t.partition} ROFS"
            for p, v in t.removed.items():
                lines.append(f"{where}: - {p} ({_entry(v)})")
            for p, v in t.added.items():
                lines.append(f"{where}: + {p} ({_entry(v)})")
            for p, (a, b) in t.changed.items():
                lines.append(f"{where}: ~ {p} ({_entry(a)} -> {_entry(b)})")
        return "\n".join(lines)


def _short(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _entry(v: dict) -> str:
    if v["type"] == "file":
        return f"file, {v['size']} bytes, sha256 {v['sha256'][:16]}"
    if v["type"] == "symlink":
        return f"symlink -> {v['target']}"
    return "directory"


def _compare(a, b, prefix: str, out: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            _compare(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k, out)
    elif a != b:
        out.append({"field": prefix, "a": a, "b": b})


def compare_trees(partition: str, a: dict[str, dict], b: dict[str, dict]) -> TreeDiff:
    t = TreeDiff(partition)
    for path in sorted(set(a) | set(b)):
        if path not in b:
            t.removed[path] = a[path]
        elif path not in a:
            t.added[path] = b[path]
        elif a[path] != b[path]:
            t.changed[path] = (a[path], b[path])
    return t


def diff_facts(fa: dict, fb: dict, a: str = "A", b: str = "B") -> DiffResult:
    result = DiffResult(a, b)
    ra, rb = fa.get("rofs") or {}, fb.get("rofs") or {}
    plain_a = {k: v for k, v in fa.items() if k != "rofs"}
    plain_b = {k: v for k, v in fb.items() if k != "rofs"}
    _compare(plain_a, plain_b, "", result.changes)
    for part in sorted(set(ra) | set(rb)):
        result.trees.append(compare_trees(part, ra.get(part, {}), rb.get(part, {})))
    return result


def diff_images(a, b) -> DiffResult:
    """Compare two images (disk images, kernel ELFs or ROFS images); see the module
    docstring."""
    a, b = os.fspath(a), os.fspath(b)
    return diff_facts(image_facts(a), image_facts(b), a, b)

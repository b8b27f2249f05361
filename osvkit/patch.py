"""``osvkit patch``: change an existing image -- its kernel, its command line, its files.

:func:`patch_image` takes a raw or qcow2 usr.img (osvkit's, or one made by OSv's scripts or
Capstan) and any of:

* ``kernel``: a new kernel (an ELF, or an image holding one) as a new payload behind
  osvkit's boot16; the partitions move to the next 2 MiB boundary when the payload passes
  the first (:func:`osvkit.image.patch.rewrite_image`);
* ``cmdline``: a new command line (the rest of the 63-sector area is zeroed);
* ``add`` (``"HOST[:GUEST]"``, a file or a directory, as ``build --add`` takes them, but
  only the files named: no libraries are looked up) and ``remove`` (guest paths; a
  directory goes with everything below it) on the ROFS partition.  The filesystem is
  rebuilt from the old tree plus the changes by the same writer ``build`` uses, so it is
  byte-identical to what ``build`` writes from the equivalent manifest; the old files are
  streamed out of the old image a range at a time.  The partition's MBR entry follows the
  new size; a disk that ended with the partition still does.

On a partition holding another filesystem (ZFS, ext) ``add``/``remove`` are a one-line error
naming it; the kernel and the command line can still be patched.  The result is written to
a temporary file and renamed over ``output`` (default: the image itself) only when every
step succeeded: a failed patch leaves every file as it was.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from dataclasses import dataclass, field

from . import layout
from .disk import open_disk
from .disk.partitions import partition_table
from .errors import FormatError, OutputError, UsageError
from .fileio import check_not_input, remove_stale_temporaries
from .image import filesystems
from .image.patch import NewPartition, PatchResult, rewrite_image
from .rofs.manifest import Dir, GuestTree


@dataclass
class PatchReport:
    """What :func:`patch_image` changed."""

    image: str
    output: str
    image_format: str
    image_size: int
    kernel: dict | None = None
    """``{size, compression, payload_size, kernel_end}`` when the kernel was replaced."""
    cmdline: str | None = None
    """The new command line, when it was replaced."""
    partition: dict | None = None
    """``{index, filesystem, old_size, new_size}`` when files were added or removed."""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def describe(self) -> str:
        lines = [f"wrote {self.output} ({self.image_format}, {self.image_size} bytes)"
                 + ("" if self.output == self.image else f" from {self.image}")]
        if self.kernel:
            k = self.kernel
            lines.append(f"  kernel: {k['size']} bytes, payload {k['payload_size']} bytes "
                         f"({k['compression']})")
        if self.cmdline is not None:
            lines.append(f"  cmdline: {self.cmdline}")
        for m in self.moved:
            lines.append(f"  partition {m['index']}: moved from {m['old_offset']:#x} to "
                         f"{m['new_offset']:#x}")
        if self.partition:
            p = self.partition
            lines.append(f"  partition {p['index']} ({p['filesystem']}): {p['old_size']} -> "
                         f"{p['new_size']} bytes")
        lines += [f"  removed {g}" for g in self.removed]
        lines += [f"  added {g}" for g in self.added]
        return "\n".join(lines)


def find_app_partition(disk, index: int | None = None):
    """The partition to change files in: ``index``, else OSv's entry 1, else the only
    partition.  A FormatError when the image has none."""
    used = [p for p in partition_table(disk) if p.sector_count]
    if index is not None:
        part = next((p for p in used if p.index == index), None)
        if part is None:
            raise FormatError(f"partition {index} is empty", path=disk.path,
                              expected="a partition holding a ROFS")
        return part
    if not used:
        raise FormatError("the image has no partition to add files to or remove them from",
                          path=disk.path, expected="an image with a ROFS partition "
                          "(built with --manifest or --add)")
    app = next((p for p in used if p.index == layout.APP_PARTITION_INDEX), None)
    if app is not None or len(used) == 1:
        return app or used[0]
    raise UsageError(f"the image has {len(used)} partitions", path=disk.path,
                     expected="--partition N to say which one holds the ROFS")


def _remove(tree: GuestTree, guest: str, image: str, index: int) -> str:
    path = "/" + posixpath.normpath("/" + guest).lstrip("/")
    if path == "/":
        raise UsageError("--remove /: the root cannot be removed", path=image,
                         expected="a path below /")
    parent = tree.lookup(posixpath.dirname(path))
    name = posixpath.basename(path)
    if not isinstance(parent, Dir) or name not in parent.children:
        raise UsageError(f"--remove {guest}: no such path in the ROFS of partition {index}",
                         path=image, expected=f"a path the image holds (osvkit rofs ls "
                                              f"{image} -p {index})")
    del parent.children[name]
    return path


def _added_tree(add) -> tuple[GuestTree, list[str]]:
    """The tree of ``--add`` items (files and directories as ``build --add`` reads them,
    without the library closure or the OSv skeleton)."""
    from .apps.builder import build_app_tree
    from .apps.supplied import Supplied

    app = build_app_tree(adds=add, bare=True, scan_added_elf=False,
                         supplied=Supplied(frozenset(), "none (patch --add)"))
    return app.tree, [f.guest for f in app.files]


def _merge(tree: GuestTree, extra: GuestTree) -> None:
    for guest, node in extra.walk():
        if guest == "/":
            continue
        tree.add(guest, Dir(origin=node.origin) if isinstance(node, Dir) else node)


def _scratch_dir(output: str) -> str | None:
    """Where the rebuilt filesystem is written: beside a regular output (same file system),
    else the system's temporary directory."""
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise OutputError("directory does not exist", path=output)
    if os.path.islink(output) or (os.path.exists(output) and not os.path.isfile(output)):
        return None
    remove_stale_temporaries(directory)
    return directory


def _rebuild_rofs(image: str, part, add, remove, tmp: str):
    from .rofs.reader import RofsImage
    from .rofs.writer import build_rofs, tree_inputs

    with RofsImage(image, partition=part.index) as rofs:
        tree = rofs.guest_tree()
        removed = [_remove(tree, g, image, part.index) for g in remove]
        added: list[str] = []
        if add:
            extra, added = _added_tree(add)
            _merge(tree, extra)
        path = os.path.join(tmp, "rofs.img")
        result = build_rofs(tree, path, osv_defaults=False)
        inputs = [item for item in tree_inputs(tree) if item[1] != image]
    info = {"index": part.index, "filesystem": "rofs", "old_size": part.size,
            "new_size": result.size}
    return NewPartition(part.index, path, result.size), info, removed, added, inputs


def patch_image(image, *, output=None, kernel=None, cmdline: str | None = None, add=(),
                remove=(), compression: str | None = None, image_format: str | None = None,
                partition: int | None = None, force_cmdline: bool = False) -> PatchReport:
    """Patch ``image``; see the module docstring.  ``output`` (default ``image``) is
    replaced atomically when every step succeeded."""
    from .image.usrimg import check_usr_cmdline

    image = os.fspath(image)
    output = image if output is None else os.fspath(output)
    add, remove = [os.fspath(a) for a in add], list(remove)
    if compression is not None and kernel is None:
        raise UsageError("--compression without --kernel", expected="--kernel KERNEL too")
    if kernel is None and cmdline is None and not add and not remove and image_format is None:
        raise UsageError("nothing to patch", path=image,
                         expected="--kernel, --cmdline, --add, --remove or --image-format")
    if output != image:     # before any work: the kernel and the added host files
        from .apps.closure import split_host_guest

        kpath = kernel if isinstance(kernel, (str, os.PathLike)) else None
        check_not_input(output, [("the kernel of this patch", kpath)]
                        + [(f"--add {a}", split_host_guest(a)[0]) for a in add])
    area = None
    if cmdline is not None:
        data = check_usr_cmdline(cmdline, force=force_cmdline)
        area = data + bytes(layout.CMDLINE_AREA_SIZE - len(data))
    new_part = part_info = None
    removed: list[str] = []
    added: list[str] = []
    inputs: list = []
    with tempfile.TemporaryDirectory(prefix=".osvkit-", dir=_scratch_dir(output)) as tmp:
        if add or remove:
            with open_disk(image) as disk:
                part = find_app_partition(disk, partition)
                kind = filesystems.identify(disk.read_upto, part.offset, part.size)
            if kind != "rofs":
                raise FormatError(f"partition {part.index} holds {filesystems.NAMES[kind]}, "
                                  "which osvkit cannot add files to or remove them from",
                                  path=image, expected="a ROFS partition (--kernel and "
                                                       "--cmdline still work on this image)")
            new_part, part_info, removed, added, inputs = _rebuild_rofs(image, part, add, remove,
                                                                        tmp)
        res: PatchResult = rewrite_image(
            image, output=output, kernel=kernel, compression=compression or "fastlz",
            image_format=image_format, cmdline_area=area, partition=new_part, inputs=inputs)
    kinfo = None
    if kernel is not None:
        kinfo = {"size": res.kernel_size, "compression": res.compression,
                 "payload_size": res.payload_size, "kernel_end": res.kernel_end}
    return PatchReport(image=image, output=output, image_format=res.image_format,
                       image_size=res.image_size, kernel=kinfo, cmdline=cmdline,
                       partition=part_info, added=added, removed=removed, moved=res.moved)

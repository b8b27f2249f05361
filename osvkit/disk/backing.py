"""Which file a qcow2 image's backing-file name refers to, and whether osvkit may open it.

An image names its own backing file, so whoever hands a user an image chooses a file that
every reader of that image opens.  osvkit follows backing files like QEMU does, within
these limits (the README's "Disk images" section says the same):

* a name that is a protocol or a JSON description (``nbd:...``, ``http://...``, ``json:{...}``)
  is refused: only local files are followed;
* a relative name is resolved against the directory of the image that names it (never the
  current directory); an absolute name is used as it is;
* the file (symbolic links followed) must be a regular file -- a FIFO, a device, a socket or
  a directory is refused -- and must not lie under ``/proc``, ``/sys`` or ``/dev``; it is
  checked before it is opened and again on the open descriptor (opened non-blocking,
  read-only: backing files are never written);
* a chain holds at most :data:`MAX_CHAIN` images, the top one included, and an image that
  appears twice in its own chain (the same device and inode) is a loop;
* the backing format must be raw or qcow2 (the one the image declares, else detected).
"""

from __future__ import annotations

import os
import re
import stat

from ..errors import FormatError, MissingInputError
from .files import file_kind

MAX_CHAIN = 16
"""Images in one backing chain, the top one included."""

PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")
"""Directories whose "regular files" are not image data (kernel state, devices)."""

_PROTOCOL = re.compile(r"^(json:|[A-Za-z][A-Za-z0-9+.-]*://|(nbd|nbd\+unix|nbd\+tcp|ssh|http|"
                       r"https|ftp|ftps|iscsi|rbd|gluster|nfs|sheepdog|vvfat|blkdebug|"
                       r"blkverify|null-co|null-aio|quorum|throttle|host_device|host_cdrom):)")


def backing_path(image_path: str, name: str) -> str:
    """The absolute path of backing file ``name`` of the image at ``image_path``."""
    if not name or "\0" in name:
        raise FormatError(f"backing file name {name!r} is not a file name", path=image_path,
                          expected="the name of a local raw or qcow2 image")
    if name.startswith("file:"):
        name = name[len("file:"):]
    elif _PROTOCOL.match(name):
        raise FormatError(f"backing file {name!r} is not a local file", path=image_path,
                          expected="a local raw or qcow2 backing file")
    base = os.path.dirname(os.path.abspath(image_path))
    return os.path.join(base, name) if not os.path.isabs(name) else name


BACKING_EXPECTED = "a regular file holding a raw or qcow2 image"


def check_backing_place(image_path: str, name: str, full: str) -> None:
    """Refuse a backing file that is missing, not a regular file, or lies on a pseudo
    filesystem -- before anything opens it (the open is checked again on its descriptor)."""
    shown = repr(name) if full == name else f"{name!r} ({full})"
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise MissingInputError(f"backing file {shown} not found", path=image_path,
                                expected=BACKING_EXPECTED) from None
    except OSError as exc:
        raise MissingInputError(f"backing file {shown} cannot be read: {exc.strerror}",
                                path=image_path) from None
    if not stat.S_ISREG(st.st_mode):
        raise MissingInputError(f"backing file {shown} is {file_kind(st.st_mode)}",
                                path=image_path, expected=BACKING_EXPECTED)
    real = os.path.realpath(full)
    for top in PSEUDO_FILESYSTEMS:
        if real == top or real.startswith(top + "/"):
            where = f" (it resolves to {real})" if real != os.path.abspath(full) else ""
            raise MissingInputError(f"backing file {shown} is under {top}{where}",
                                    path=image_path,
                                    expected=BACKING_EXPECTED + ", not kernel or device state")


def check_chain(image_path: str, identity: tuple[int, int], chain: tuple) -> tuple:
    """``chain`` -- ``((device, inode), path)`` of every image above this one, top first --
    extended with this image; a loop or a chain longer than :data:`MAX_CHAIN` is an error."""
    for seen, seen_path in chain:
        if seen == identity:
            raise FormatError(f"backing chain loops: it leads back to {seen_path}",
                              path=chain[0][1], expected="a backing chain that ends")
    if len(chain) + 1 > MAX_CHAIN:
        raise FormatError(f"backing chain longer than {MAX_CHAIN} images (at {image_path})",
                          path=chain[0][1], expected=f"at most {MAX_CHAIN} images in a chain")
    return chain + ((identity, image_path),)

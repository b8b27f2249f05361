"""usr.img with the application: a ROFS built from an OSv manifest in MBR partition 1.

:func:`build_app_image` is what ``osvkit build KERNEL --format usr --manifest M`` runs: it builds
the ROFS (``osvkit.rofs.build_rofs``) into a temporary file beside the output, puts it in
partition index 1 at the next 2 MiB boundary after the kernel (``build_usr_image``), and adds
``--rootfs=rofs`` to the command line unless it already names a root filesystem, as OSv's
``scripts/build`` does.
"""

from __future__ import annotations

import os
import tempfile

from ..cmdline import split_cmdline
from ..errors import OutputError
from ..fileio import remove_stale_temporaries
from .usrimg import BuildResult, build_usr_image

ROOTFS_OPTION = "--rootfs"


def with_rootfs(cmdline: str, fs: str = "rofs") -> str:
    """``cmdline`` with ``--rootfs=<fs>`` in front unless a loader option names a root fs."""
    options = split_cmdline(cmdline).options
    if any(o == ROOTFS_OPTION or o.startswith(ROOTFS_OPTION + "=") for o in options):
        return cmdline
    return f"{ROOTFS_OPTION}={fs} {cmdline}".rstrip()


def build_app_image(kernel, output, *, manifest, defines: dict[str, str] | None = None,
                    manifest_root=None, allow_missing: bool = False,
                    follow_symlinks_anywhere: bool = False, cmdline: str = "",
                    **usr_options) -> BuildResult:
    """Build ``output`` (a usr.img) from ``kernel`` and the ROFS that ``manifest`` describes.

    ``usr_options`` go to :func:`osvkit.image.usrimg.build_usr_image` (compression,
    image_format, size, force_cmdline).  Nothing is left behind on failure."""
    from ..rofs import build_rofs

    directory = os.path.dirname(os.path.abspath(os.fspath(output)))
    if not os.path.isdir(directory):
        raise OutputError("directory does not exist", path=output)
    cmdline = with_rootfs(cmdline)
    remove_stale_temporaries(directory)
    try:
        tmp = tempfile.TemporaryDirectory(prefix=".osvkit-rofs-", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot create a temporary file: {exc.strerror}", path=output) from None
    with tmp:
        rofs_path = os.path.join(tmp.name, "rofs.img")
        build_rofs(manifest, rofs_path, defines=defines, manifest_root=manifest_root,
                   allow_missing=allow_missing, follow_symlinks_anywhere=follow_symlinks_anywhere,
                   outputs=[output])
        return build_usr_image(kernel, output, cmdline=cmdline, partition=rofs_path, **usr_options)

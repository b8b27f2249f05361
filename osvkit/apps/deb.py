"""``--deb PACKAGE[=VERSION]``: Debian packages fetched with the system's ``apt-get download``
and unpacked with ``dpkg-deb -x`` into a cache directory (default
``$XDG_CACHE_HOME/osvkit/deb``, else ``~/.cache/osvkit/deb``).

A package already downloaded and unpacked there is used again without asking apt (the file
name apt would download is asked with ``apt-get --print-uris download``, which needs no
network when the package lists are present)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ..errors import OutputError, ToolError, UsageError

_SPEC = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")
_URI = re.compile(r"^'[^']*' (\S+\.deb) \d+")


@dataclass
class UnpackedDeb:
    spec: str
    deb: str
    root: str


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "osvkit", "deb")


def _tool(name: str, why: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ToolError(f"{name} is not installed", path=name,
                        expected=f"Debian's {why} (--deb works on Debian/Ubuntu hosts only)")
    return exe


def _run(cmd: list[str], cwd: str, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        err = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
        raise ToolError(f"{' '.join(cmd[:2])} failed for {what}: {err[:200]}", path=cmd[0],
                        expected="an installable package (check the name, the version and "
                                 "'apt-get update')")
    return proc.stdout


def fetch_deb(spec: str, cache_dir: str | None = None) -> UnpackedDeb:
    """Download (unless cached) and unpack one package; return where it was unpacked."""
    if not _SPEC.match(spec):
        raise UsageError(f"--deb {spec!r}", expected="PACKAGE or PACKAGE=VERSION (Debian names)")
    apt = _tool("apt-get", "apt-get (apt)")
    dpkg_deb = _tool("dpkg-deb", "dpkg-deb (dpkg)")
    cache = os.path.abspath(cache_dir or default_cache_dir())
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the package cache: {exc.strerror}", path=cache) from None
    out = _run([apt, "-qq", "--print-uris", "download", spec], cache, spec)
    names = [m.group(1) for m in map(_URI.match, out.splitlines()) if m]
    if len(names) != 1:
        raise ToolError(f"apt-get printed no single package file for {spec}", path=apt,
                        expected="one .deb to download")
    deb = os.path.join(cache, names[0])
    if not os.path.isfile(deb):
        _run([apt, "-qq", "download", spec], cache, spec)
        if not os.path.isfile(deb):
            raise ToolError(f"apt-get download did not write {names[0]}", path=apt,
                            expected="the package file in the cache directory")
    root = deb[:-len(".deb")] + ".root"
    if not os.path.isdir(root):
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=cache)
        try:
            _run([dpkg_deb, "-x", deb, tmp], cache, names[0])
            os.rename(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return UnpackedDeb(spec, deb, root)

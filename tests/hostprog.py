"""Host programs for the apps tests: gcc, and a small dynamically linked program.

``greet_program(d, rpath)`` compiles into directory ``d``:

* ``lib/libgreet.so.1.0`` (soname ``libgreet.so.1``), with the symlinks ``lib/libgreet.so.1``
  -> ``libgreet.so.1.0`` and ``lib/libgreet.so`` -> ``libgreet.so.1``;
* ``bin/prog``, which needs ``libgreet.so.1`` and carries ``rpath`` as DT_RUNPATH
  (``new_dtags=True``) or DT_RPATH (``new_dtags=False``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import missing_tool


def gcc() -> str:
    """The path of gcc; a visible skip (a failure under OSVKIT_REQUIRE_TOOLS=1) without it."""
    path = shutil.which("gcc")
    if path is None:
        missing_tool("gcc is not installed (install.sh installs it)")
    return path


def greet_program(d: Path, rpath: str = "$ORIGIN/../lib", *, new_dtags: bool = True) -> Path:
    """Build ``d/bin/prog`` and its library under ``d/lib`` (see the module); returns the
    program's path."""
    cc = gcc()
    (d / "lib").mkdir()
    (d / "bin").mkdir()
    (d / "greet.c").write_text('#include <stdio.h>\nvoid greet(void){puts("hi");}\n')
    (d / "main.c").write_text("void greet(void);\nint main(void){greet();return 0;}\n")
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o",
                    str(d / "lib/libgreet.so.1.0"), str(d / "greet.c")], check=True)
    os.symlink("libgreet.so.1.0", d / "lib/libgreet.so.1")
    os.symlink("libgreet.so.1", d / "lib/libgreet.so")
    tags = "-Wl,--enable-new-dtags" if new_dtags else "-Wl,--disable-new-dtags"
    subprocess.run([cc, "-o", str(d / "bin/prog"), str(d / "main.c"), f"-L{d / 'lib'}",
                    "-lgreet", f"-Wl,-rpath,{rpath}", tags], check=True)
    return d / "bin/prog"

"""Shared fixtures.

* ``qemu``: the path of ``qemu-system-x86_64``; tests that use it skip with a visible reason
  when it is absent (it is installed by ``install.sh`` and present in CI).
* ``osv_kernel``: a real OSv ``loader-stripped.elf`` from ``OSVKIT_KERNEL``; skipped when unset.
* ``cli``: runs ``python -m osvkit`` as a real subprocess and returns the CompletedProcess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def qemu() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        pytest.skip("qemu-system-x86_64 is not installed (install.sh installs it)")
    return path


@pytest.fixture(scope="session")
def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        pytest.skip("qemu-img is not installed (install.sh installs it)")
    return path


@pytest.fixture(scope="session")
def osv_kernel() -> Path:
    value = os.environ.get("OSVKIT_KERNEL")
    if not value:
        pytest.skip("OSVKIT_KERNEL is not set (path to a real OSv loader-stripped.elf)")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"OSVKIT_KERNEL={value} is not a file")
    return path


def run_cli(*args: str, input: bytes | None = None, cwd=None, env=None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m osvkit ARGS`` as a subprocess (text output)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "osvkit", *map(str, args)], input=input,
                          capture_output=True, cwd=cwd, env=full_env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli

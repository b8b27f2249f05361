"""Shared fixtures.

* ``qemu``: the path of ``qemu-system-x86_64``; tests that use it skip with a visible reason
  when it is absent (it is installed by ``install.sh`` and present in CI).
* ``osv_kernel``: a real OSv ``loader-stripped.elf`` from ``OSVKIT_KERNEL``; skipped when unset.
* ``osv_image``: a usr.img made by OSv's own ``scripts/build`` (qcow2, fs=rofs) from
  ``OSVKIT_OSV_IMAGE``; skipped when unset.
* ``cli``: runs ``python -m osvkit`` as a real subprocess and returns the CompletedProcess.
* ``linux_kernel``: Debian's amd64 kernel (bzImage and the vmlinux ELF extracted from it),
  fetched once into a cache directory (tests/linuxkernel.py); ``linux_initramfs``: a gzip'd
  cpio with a static ``/init`` that reports what Linux saw.  Both skip with the reason when
  apt, the network or gcc is missing (fail under ``OSVKIT_REQUIRE_TOOLS=1``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def missing_tool(reason: str):
    """Skip a test whose external tool is absent -- or fail it when ``OSVKIT_REQUIRE_TOOLS=1``
    (set by ``.ci/run``, after ``install.sh`` installed every tool), so that a broken install
    cannot turn the boot tests into silent skips."""
    if os.environ.get("OSVKIT_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason} (OSVKIT_REQUIRE_TOOLS=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str):
    """``pytest.importorskip`` for the test extra's modules (unicorn, jsonschema, PyYAML,
    ...), failing instead of skipping under ``OSVKIT_REQUIRE_TOOLS=1``."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        missing_tool(f"Python module {name} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="session")
def qemu() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        missing_tool("qemu-system-x86_64 is not installed (install.sh installs it)")
    return path


@pytest.fixture(scope="session")
def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        missing_tool("qemu-img is not installed (install.sh installs it)")
    return path


def _env_file(name: str, what: str) -> Path:
    """The file an environment variable names; skip when it is unset, fail when it is no file."""
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set ({what})")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{name}={value} is not a file")
    return path


@pytest.fixture(scope="session")
def osv_kernel() -> Path:
    return _env_file("OSVKIT_KERNEL", "path to a real OSv loader-stripped.elf")


@pytest.fixture(scope="session")
def osv_image() -> Path:
    return _env_file("OSVKIT_OSV_IMAGE", "a usr.img made by OSv's scripts/build")


@pytest.fixture
def restore_cli_state():
    """In-process CLI runs with -q turn the progress bar off and set up the osvkit logger:
    put both back so later tests see the defaults."""
    import logging

    from osvkit import log as logs
    from osvkit import progress

    log = logging.getLogger("osvkit")
    saved = (progress._enabled, list(log.handlers), log.level, log.propagate, logs._level,
             logs._applied)
    yield
    progress.set_enabled(saved[0])
    log.handlers[:], log.level, log.propagate = saved[1], saved[2], saved[3]
    logs._level, logs._applied = saved[4], saved[5]


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


@pytest.fixture(scope="session")
def linux_kernel():
    from linuxkernel import Unavailable, linux_kernel as fetch

    try:
        return fetch()
    except Unavailable as exc:
        missing_tool(f"no Linux test kernel: {exc}")


@pytest.fixture(scope="session")
def linux_initramfs(tmp_path_factory) -> Path:
    from linuxkernel import Unavailable, build_init, build_initramfs

    d = tmp_path_factory.mktemp("initramfs")
    try:
        init = build_init(d)
    except Unavailable as exc:
        missing_tool(f"no initramfs: {exc}")
    path = d / "initramfs.cpio.gz"
    path.write_bytes(build_initramfs(init.read_bytes()))
    return path


@pytest.fixture(scope="session")
def probe_elf(tmp_path_factory) -> Path:
    """The conformance kernel (``osvkit probe``'s default build) as an ELF file."""
    from osvkit.probe import build_probe

    p = tmp_path_factory.mktemp("probe") / "probe.elf"
    p.write_bytes(build_probe(None))
    return p

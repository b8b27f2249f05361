"""osvkit as a package: ``python -m build`` makes a wheel and an sdist that ``twine check``
accepts, and the wheel installed in a new virtual environment, used from outside the
repository, runs ``osvkit demo`` (three real QEMU boots) with its package data (the build
file's JSON schema).

The virtual environment shares the interpreter's site-packages for osvkit's dependencies
(``--system-site-packages``, the wheel installed with ``--no-deps``), so the test needs no
network; ``.ci/run`` installs the wheel with its dependencies into an isolated environment as
well.  The test checks that ``osvkit`` is imported from the environment, not the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, require_module

pytestmark = pytest.mark.slow


def _tracked_files() -> list[str]:
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout: the package is built from the tracked files")
    return [p for p in r.stdout.decode().split("\0") if p]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Wheel and sdist built from a copy of the tracked files (nothing left in the checkout)."""
    require_module("build")
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked_files():
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    # without isolation when setuptools and wheel are here (the test extra has them): offline
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
        isolation = ["--no-isolation"]
    except ImportError:
        isolation = []
    r = subprocess.run([sys.executable, "-m", "build", *isolation, "--outdir", str(out), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


def test_wheel_and_sdist(dist):
    wheels = list(dist.glob("osvkit-*.whl"))
    sdists = list(dist.glob("osvkit-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "osvkit/schema/osvkit-build.schema.json" in names
    assert "osvkit/cli/__init__.py" in names and not any(n.startswith("tests/") for n in names)
    entry = zipfile.ZipFile(wheels[0]).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "osvkit = osvkit.cli:main" in entry


def test_twine_check(dist):
    require_module("twine")
    r = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                        *map(str, dist.iterdir())], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.count("PASSED") == 2, r.stdout + r.stderr


@pytest.mark.qemu
def test_installed_wheel_runs_demo(dist, tmp_path, qemu):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    wheel = next(dist.glob("osvkit-*.whl"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OSVKIT_CONFIG")}
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", str(wheel)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    where = subprocess.run([str(py), "-c", "import osvkit; print(osvkit.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(env_dir)), where.stdout + where.stderr
    osvkit = env_dir / "bin" / "osvkit"
    r = subprocess.run([str(osvkit), "demo", "--json", "--out", str(tmp_path / "demo")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert len(result["boots"]) == 3 and all(b["status"] == "pass" for b in result["boots"]), \
        result["boots"]
    # the package data: a build file is checked against the schema shipped in the wheel
    (tmp_path / "bad.toml").write_text("spec = 1\nbogus = 1\n")
    r = subprocess.run([str(osvkit), "build", "-c", str(tmp_path / "bad.toml")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 65 and "bogus" in r.stderr, r.stderr

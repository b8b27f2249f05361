"""The examples run as documented: the Python API example (its --test output against
examples/reference_output), the CLI walkthrough script, and the GitHub Actions workflow's
osvkit commands."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for k in [k for k in env if k.startswith("OSVKIT_") or k == "SOURCE_DATE_EPOCH"]:
        del env[k]
    env.update(extra)
    return env


@pytest.mark.qemu
def test_python_api_example_matches_reference(tmp_path, qemu, qemu_img):
    r = subprocess.run([sys.executable, str(EXAMPLES / "python_api.py"), "--test",
                        str(tmp_path / "work")], capture_output=True, text=True, env=_env(),
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = (EXAMPLES / "reference_output" / "python_api.out").read_text()
    assert r.stdout == expected
    assert (tmp_path / "work" / "boot.svg").is_file()


@pytest.mark.qemu
def test_walkthrough_runs(tmp_path, qemu, qemu_img):
    work = tmp_path / "walk"
    r = subprocess.run(["bash", str(EXAMPLES / "walkthrough.sh"), str(work)],
                       capture_output=True, text=True, timeout=600,
                       env=_env(OSVKIT=f"{shlex.quote(sys.executable)} -m osvkit"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    steps = [line for line in r.stderr.splitlines() if line.startswith("== ")]
    assert len(steps) == 9 and steps[-1].startswith("== done")
    assert "PASSED: every boot path saw the probe intact" in r.stdout
    assert "--verbose /hello edited" in r.stdout
    assert "no console line matches '^never printed$'" in r.stdout
    import json
    build = json.loads((work / "build.json").read_text())
    assert {o["kind"] for o in build["images"][0]["outputs"]} == {
        "usr", "vmlinux", "rofs", "firecracker-config", "vmdk", "gce"}
    verify = json.loads((work / "verify.json").read_text())
    assert verify["passed"] is True and verify["boots"][0]["vmm"] == "qemu-pvh"
    assert verify["boots"][0]["probe"]["cmdline"].startswith("--nopci /hello")
    import xml.etree.ElementTree as ET
    ET.parse(work / "boot.svg")


def _workflow_steps() -> list[dict]:
    yaml = require_module("yaml")
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    return doc["jobs"]["images"]["steps"], doc


def test_workflow_shape():
    steps, doc = _workflow_steps()
    uses = [s.get("uses", "") for s in steps]
    assert uses[0].startswith("actions/checkout@") and uses[1].startswith("actions/setup-python@")
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    runs = "\n".join(s.get("run", "") for s in steps)
    # osvkit is not on PyPI: the workflow installs a wheel it builds from osvkit's source
    assert "pip install osvkit" not in runs
    assert "python -m build --wheel --outdir wheelhouse osvkit-src" in runs
    assert "pip install wheelhouse/osvkit-*.whl" in runs
    src = next(s for s in steps if s.get("with", {}).get("path") == "osvkit-src")
    assert src["uses"].startswith("actions/checkout@")
    assert "osvkit build -c osvkit.toml" in runs and "osvkit verify -c osvkit.toml" in runs
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert "osvkit-manifest.json" in upload["with"]["path"]
    assert doc["jobs"]["images"]["env"]["SOURCE_DATE_EPOCH"] == "0"


@pytest.mark.qemu
def test_workflow_commands_run(tmp_path, qemu, qemu_img):
    """Run the workflow's osvkit steps in a copy of examples/ (the install steps are CI's)."""
    steps, doc = _workflow_steps()
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("out", "reference_output"))
    env = _env(**{k: str(v) for k, v in doc["jobs"]["images"]["env"].items()})
    env["PROJECT_DIR"] = "."          # what ${{ vars.PROJECT_DIR || '.' }} gives by default
    env["OSVKIT_TIMEOUT"] = "60"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "osvkit"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m osvkit \"$@\"\n")
    shim.chmod(0o755)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    ran = 0
    for step in steps:
        run = step.get("run", "")
        if "osvkit " not in run or "pip install" in run:
            continue
        r = subprocess.run(["bash", "-eo", "pipefail", "-c", run], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (step["name"], r.stdout[-2000:], r.stderr[-2000:])
        ran += 1
    assert ran == 3
    for path in ("osvkit-manifest.json", "build.json", "verify.json", "boot.svg", "out/probe.img"):
        assert (work / path).exists(), path

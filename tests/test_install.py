"""A fresh machine installs the lock whatever the registry published since it was written.

deploy/install.sh is the path of `make`, CI and the image. Here it runs in a brand-new venv
made with the interpreter's own bundled pip, with wheels of newer releases of locked packages
beside the registry (a `uvicorn` newer than the pin is what broke the bundled pip 23.2.1 in
hash-checking mode: nanio asks for `uvicorn[standard]>=0.30`), and must still pick exactly
the locked versions."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "deploy" / "install.sh"
# Newer than any pin: the resolver sees them first if it looks at the registry at all.
NEWER = ("uvicorn", "tqdm", "pip")

pytestmark = pytest.mark.integration


def _pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock.read_text(), re.M)
    return {name.lower().replace("_", "-"): version for name, version in found}


def _fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal valid wheel of `name` at `version` (pure Python, no code)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: orisel-test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def _bundled_pip(venv: Path) -> str:
    out = subprocess.run(
        [venv / "bin/python", "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]


def test_a_new_venv_with_the_bundled_pip_installs_the_lock_despite_newer_releases(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    bundled = _bundled_pip(venv)
    newer = tmp_path / "newer"
    newer.mkdir()
    for name in NEWER:
        _fake_wheel(newer, name, "999.0.0")
    report = tmp_path / "report.json"
    command: list[str | Path] = [INSTALL, "--check", venv, ROOT / "requirements.lock"]
    command += ["--find-links", newer]
    result = subprocess.run(
        [*command, "--report", report],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _bundled_pip(venv) == _pins(ROOT / "requirements-bootstrap.lock")["pip"] != "999.0.0"
    assert bundled != "999.0.0"
    chosen = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert chosen == _pins(ROOT / "requirements.lock")


def test_the_installer_refuses_an_unsupported_python(tmp_path: Path) -> None:
    fake = tmp_path / "python3.12"
    fake.write_text("#!/bin/sh\necho 3.12\n")
    fake.chmod(0o755)
    result = subprocess.run(
        [INSTALL, tmp_path / "venv", ROOT / "requirements.lock"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(fake)},
    )
    assert result.returncode == 2
    assert "supports CPython 3.11" in result.stderr
    assert not (tmp_path / "venv").exists()

"""requirements.lock pins, with hashes, every package pyproject.toml asks for (make install,
and so CI, installs exactly it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_declared_package_is_locked_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for requirements in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in requirements if not r.startswith("orisel[")}
    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:", lock, re.M))
    pinned = {k.lower().replace("_", "-"): v for k, v in pinned.items()}
    assert wanted - set(pinned) == set()
    # Every requirement of the lock carries a hash (pip --require-hashes refuses otherwise).
    entries = re.findall(r"^[A-Za-z0-9_.-]+==", lock, re.M)
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9_.-]+==\S+ \\\n\s+--hash", lock, re.M))
    assert "file://" not in lock
    assert not re.search(r"^--(extra-)?index-url|^--find-links", lock, re.M)
    assert pinned["torch"] == "2.14.1"
    assert pinned["torchvision"] == "0.29.1"

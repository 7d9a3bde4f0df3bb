"""requirements.lock pins, with hashes, every package pyproject.toml asks for (make install,
and so CI, installs exactly it); docker/requirements.lock, its runtime part, is what the image
installs: the same versions and hashes, no test or lint tools. Both go through
deploy/install.sh, whose pip is itself locked (requirements-bootstrap.lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of every requirement of a lock."""
    blocks = re.findall(
        r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:\w+(?: \\)?\n)+)",
        path.read_text(),
        re.M,
    )
    return {
        n.lower().replace("_", "-"): (v, frozenset(re.findall(r"sha256:(\w+)", h)))
        for n, v, h in blocks
    }


def test_the_image_installs_the_runtime_part_of_the_lock_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    full, image = _pins(ROOT / "requirements.lock"), _pins(ROOT / "docker" / "requirements.lock")
    assert len(image) == len(
        re.findall(r"^\S+==", (ROOT / "docker/requirements.lock").read_text(), re.M)
    )
    assert {n: image[n] for n in image} == {n: full[n] for n in image}  # same versions, hashes
    runtime = {_name(r) for r in project["project"]["dependencies"]}
    build = {_name(r) for r in project["build-system"]["requires"]}
    assert runtime | build <= set(image)
    tools = {_name(r) for r in project["project"]["optional-dependencies"]["test"]}
    tools |= {_name(r) for r in project["project"]["optional-dependencies"]["lint"]}
    assert not tools & set(image) - runtime
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY docker/requirements.lock" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {
        "!docker/requirements.lock",
        "!requirements-bootstrap.lock",
        "!deploy/install.sh",
    } <= set(ignored)
    # The image installs through the same script as make and CI (the locked pip, then the
    # lock with --require-hashes); orisel itself adds nothing: it resolves no version.
    assert "RUN deploy/install.sh /opt/orisel docker/requirements.lock" in dockerfile
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", dockerfile)
    assert len(installs) == 1
    assert "--no-deps --no-build-isolation ." in installs[0]
    makefile = (ROOT / "Makefile").read_text()
    assert "deploy/install.sh $(VENV) requirements.lock" in makefile
    script = (ROOT / "deploy" / "install.sh").read_text()
    assert script.count("--require-hashes") == 2
    assert '-r "$bootstrap"' in script


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


def test_the_installer_itself_is_pinned_with_hashes() -> None:
    pins = _pins(ROOT / "requirements-bootstrap.lock")
    assert set(pins) == {"pip"}
    version, hashes = pins["pip"]
    assert hashes
    assert f"pip=={version}" in (ROOT / "requirements-bootstrap.in").read_text()

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import torch

import orisel
from orisel.kernel.provenance import code_version, environment, sha256_file


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"orisel" * 100_000)
    assert sha256_file(p, chunk=4096) == hashlib.sha256(b"orisel" * 100_000).hexdigest()


def test_code_version_names_the_commit() -> None:
    src = Path(orisel.__file__).parent
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=False
    )
    version = code_version()
    assert version.startswith(orisel.__version__)
    if head.returncode == 0:
        assert f"+g{head.stdout.strip()[:12]}" in version


def test_environment_records_versions() -> None:
    env = environment(torch.device("cpu"))
    assert env["torch"] == torch.__version__
    assert env["device"] == "cpu"
    assert env["code_version"] == code_version()

"""Moving analysis inputs and outputs between a worker's scratch space and the store."""

from __future__ import annotations

from pathlib import Path

from orisel.core.storage import ArtifactRef, ArtifactStore


def fetch(store: ArtifactStore, ref: ArtifactRef, cache_root: Path) -> Path:
    """A local copy of `ref`, cached by content: a second task on the same worker reuses it."""
    local = cache_root / ref.sha256 / Path(ref.key).name
    return local if local.is_file() else store.get_file(ref, local)


def upload_dir(store: ArtifactStore, prefix: str, folder: Path) -> list[ArtifactRef]:
    """Every file under `folder` to `prefix/<relative path>`; rewriting gives the same keys."""
    return [
        store.put_file(f"{prefix}/{p.relative_to(folder).as_posix()}", p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]

"""Moving analysis inputs and outputs between a worker's scratch space and the store."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from orisel.kernel.errors import FailedPrecondition, InvalidArgument, NotFound
from orisel.store.backend import ArtifactRef, ArtifactStore, check_key, put_if_absent

SHA256 = re.compile(r"[0-9a-f]{64}")


def local_path(cache_root: Path, ref: ArtifactRef) -> Path:
    """Where a worker keeps its copy of `ref`: <root>/<sha256>/<file name>, from a checksum
    that must be hex and a key the store accepts, so no reference can point outside the root."""
    check_key(ref.key)
    if not SHA256.fullmatch(ref.sha256):
        raise InvalidArgument("sha256", "64 hex digits, as the store recorded", ref.sha256)
    return cache_root / ref.sha256 / PurePosixPath(ref.key).name


def fetch(store: ArtifactStore, ref: ArtifactRef, cache_root: Path) -> Path:
    """A local copy of `ref`, cached by content: a second task on the same worker reuses it."""
    local = local_path(cache_root, ref)
    return local if local.is_file() else store.get_file(ref, local)


def upload_dir(store: ArtifactStore, prefix: str, folder: Path) -> list[ArtifactRef]:
    """Every file under `folder` to `prefix/<relative path>`. Objects are written once: a file
    an earlier attempt of the same job already uploaded stands (first write wins)."""
    return [
        put_if_absent(store, f"{prefix}/{p.relative_to(folder).as_posix()}", p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def resolve(store: ArtifactStore, msg: Any, field: str, where: str = "spec") -> ArtifactRef:
    """The stored object a request's ArtifactRef field names, with its recorded checksum.

    A client may name an object by key alone; a checksum it gives must match the store's.
    """
    if not msg.HasField(field):
        raise InvalidArgument(f"{where}.{field}", "an ArtifactRef to an object in the store", None)
    given = ArtifactRef.from_proto(getattr(msg, field))
    if not given.key:
        raise InvalidArgument(f"{where}.{field}.key", "the key of an object in the store", "")
    try:
        stored = store.stat(given.key)
    except NotFound as exc:
        raise NotFound(
            f"{where}.{field}: artifact {given.key} does not exist in the store"
        ) from exc
    if given.sha256 and given.sha256 != stored.sha256:
        raise FailedPrecondition(
            f"{where}.{field}: artifact {given.key} has sha256 {stored.sha256[:12]}, "
            f"not {given.sha256[:12]}: it was replaced since the client read it"
        )
    return stored

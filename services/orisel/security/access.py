"""Who may read and write which artifacts, decided from the key and the job database.

- `runs/<job>/...` and `analyses/<job>/...`: a job's outputs, readable by the job's owner;
  only workers write them.
- `users/<user>/...`: a user's uploads, readable and writable by that user only.
- `activations/<user>/...`: the responses of a user's networks that extraction jobs stored
  (content-addressed, shared by that user's jobs), readable by that user; only workers
  write them.
- `datasets/...` and `models/...`: shared inputs, readable by everyone, written by admins.
Admins read everything. A key nobody may read is NOT_FOUND, never a hint that it exists.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path, PurePosixPath

from orisel.control.db import JobDB
from orisel.kernel.errors import InvalidArgument, NotFound, PermissionDenied
from orisel.security import auth
from orisel.store.backend import ArtifactRef, ArtifactStore, check_key

JOB_OUTPUTS = ("runs", "analyses")
SHARED = ("datasets", "models")
USERS = "users"
# Per-user folders that only workers write.
WORKER_WRITTEN = "activations"


def user_prefix(user: str) -> str:
    return f"{USERS}/{auth.check_user(user)}/"


def may_read(db: JobDB, who: auth.Principal, key: str) -> bool:
    parts = PurePosixPath(check_key(key)).parts
    if who.admin or parts[0] in SHARED:
        return True
    if parts[0] in (USERS, WORKER_WRITTEN):
        return len(parts) > 2 and parts[1] == who.name
    if parts[0] in JOB_OUTPUTS and len(parts) > 2:
        try:
            db.get(parts[1], owner=who.name)
        except (NotFound, InvalidArgument):
            return False
        return True
    return False


def check_write(who: auth.Principal, key: str) -> str:
    """A key this principal may upload to; job outputs are written by their jobs only."""
    parts = PurePosixPath(check_key(key)).parts
    if parts[0] == USERS and len(parts) > 2 and (who.admin or parts[1] == who.name):
        return key
    if parts[0] in SHARED and len(parts) > 1:
        if who.admin:
            return key
        raise PermissionDenied(f"{key}: only an admin writes under {parts[0]}/")
    raise PermissionDenied(
        f"{key}: uploads go under {user_prefix(who.name)} (or, for admins, datasets/ or models/)"
    )


class GuardedStore:
    """The store as the caller of the current request may see it: what they may not read is
    NOT_FOUND. Front ends hand this to everything that reads on a client's behalf."""

    def __init__(self, store: ArtifactStore, db: JobDB) -> None:
        self.inner = store
        self.db = db
        self.bucket = store.bucket

    def _check(self, key: str) -> str:
        if not may_read(self.db, auth.current(), key):
            raise NotFound(f"artifact {key} does not exist")
        return key

    def stat(self, key: str) -> ArtifactRef:
        return self.inner.stat(self._check(key))

    def exists(self, key: str) -> bool:
        """False for a key the caller may not read, as for one that is not there."""
        return may_read(self.db, auth.current(), key) and self.inner.exists(key)

    def get_file(self, ref: ArtifactRef, dest: Path) -> Path:
        self._check(ref.key)
        return self.inner.get_file(ref, dest)

    def list(self, prefix: str) -> list[ArtifactRef]:
        who = auth.current()
        return [r for r in self.inner.list(prefix) if may_read(self.db, who, r.key)]

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        return self.inner.put_file(check_write(auth.current(), key), path)

    def delete(self, key: str) -> None:
        raise PermissionDenied(f"{key}: artifacts are never deleted through the API")

    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        return self.inner.url(self._check(key), expires)

"""The artifact store: one interface, a local-folder backend and an S3/MinIO backend.

Object layout (both backends), under one bucket:

    data/<sha256>/<file name>            data sets, content-addressed
    runs/<run id>/...                    training runs: manifest.json, checkpoints/*.pt, best.pt
    analyses/<job id>/<kind>/...         tune / ablate / invariance outputs

Every object's sha256 is recorded when it is written and checked when it is read. Objects are
written once: putting other bytes under an existing key is refused (the same bytes again is a
no-op), so nothing a job recorded can change under a reader. No reader ever sees half an
object: the local backend links a complete temporary file into place; S3 makes an object
visible only once its (single or multipart) upload completes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from orisel.kernel.atomic import atomic_write_json
from orisel.kernel.errors import (
    DataError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    out_of_space,
)
from orisel.kernel.provenance import sha256_file
from orisel.runtime import metrics

if TYPE_CHECKING:
    from orisel.api.common.v1 import common_pb2
    from orisel.runtime.settings import Settings

SHA_META = "sha256"
PART_SIZE = 16 * 2**20  # multipart chunk for large checkpoints
AUTH_ERRORS = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied")


@dataclass(frozen=True)
class ArtifactRef:
    bucket: str
    key: str
    sha256: str
    size: int

    def to_proto(self) -> common_pb2.ArtifactRef:
        from orisel.api.common.v1 import common_pb2

        return common_pb2.ArtifactRef(
            bucket=self.bucket, key=self.key, sha256=self.sha256, size=self.size
        )

    @classmethod
    def from_proto(cls, msg: object) -> ArtifactRef:
        return cls(msg.bucket, msg.key, msg.sha256, msg.size)  # type: ignore[attr-defined]


def check_key(key: str) -> str:
    """Keys are relative POSIX paths of named parts (no '', '.' or '..'), so no backend can
    escape its bucket; at most 1024 bytes, each part at most 255."""
    # S3 keys are at most 1024 bytes of UTF-8, and a file system's names 255 bytes each.
    odd = len(key.encode()) > 1024 or any(ord(ch) < 32 or ord(ch) == 127 for ch in key)
    parts = key.split("/")
    long_part = any(len(part.encode()) > 255 for part in parts)
    if odd or long_part or "\\" in key or any(part in ("", ".", "..") for part in parts):
        raise InvalidArgument("key", "a relative path like runs/x/best.pt, without '..'", key)
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: a key's beginning ('' for all), under the same rules as keys."""
    if prefix and prefix != "/":
        check_key(prefix.removesuffix("/"))
        return prefix
    if prefix:
        raise InvalidArgument("prefix", "a key prefix such as runs/<job>/", prefix)
    return prefix


class ArtifactStore(Protocol):
    bucket: str

    def put_file(self, key: str, path: Path) -> ArtifactRef: ...
    def get_file(self, ref: ArtifactRef, dest: Path) -> Path: ...
    def stat(self, key: str) -> ArtifactRef: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[ArtifactRef]: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str: ...


class Publisher(ArtifactStore, Protocol):
    """A backend that calls `before_publish` once the object's bytes are staged, just before
    they become visible: a fenced writer (lifecycle.FencedStore) checks there that it still
    holds its job, and an exception refuses the write with nothing left behind."""

    def put_file(
        self, key: str, path: Path, before_publish: Callable[[], None] | None = None
    ) -> ArtifactRef: ...


def put_bytes(store: ArtifactStore, key: str, data: bytes) -> ArtifactRef:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"
        path.write_bytes(data)
        return store.put_file(key, path)


def get_bytes(store: ArtifactStore, ref: ArtifactRef) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return store.get_file(ref, Path(tmp) / "blob").read_bytes()


def _verify_into(tmp: Path, dest: Path, ref: ArtifactRef, digest: str | None = None) -> Path:
    digest = digest or sha256_file(tmp)
    if digest != ref.sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"artifact {ref.bucket}/{ref.key} is corrupt: sha256 {digest[:12]} != {ref.sha256[:12]}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def _same_or_refuse(stored: ArtifactRef, new: ArtifactRef) -> ArtifactRef:
    """Objects are written once: the same bytes again is a no-op, other bytes are refused."""
    if stored.sha256 == new.sha256:
        return stored
    raise FailedPrecondition(
        f"artifact {stored.bucket}/{stored.key} exists with other content (sha256 "
        f"{stored.sha256[:12]}, not {new.sha256[:12]}): artifacts are written once"
    )


def put_if_absent(store: ArtifactStore, key: str, path: Path) -> ArtifactRef:
    """The object at `key`, written from `path` unless another attempt of the same job wrote
    it first (an earlier one, or one that lost its lease and raced this one): the first write
    wins, and the reference returned is always the stored object's."""
    try:
        return store.stat(key)
    except NotFound:
        pass
    # Another attempt's bytes may get there first (FailedPrecondition): they stand.
    with contextlib.suppress(FailedPrecondition):
        store.put_file(key, path)
    return store.stat(key)


class _Measured:
    """put_file/get_file timed and counted for the metrics, around each backend's own."""

    backend = ""

    def _put(self, key: str, path: Path, before_publish: Callable[[], None] | None) -> ArtifactRef:
        raise NotImplementedError

    def _get(self, ref: ArtifactRef, dest: Path) -> Path:
        raise NotImplementedError

    def put_file(
        self, key: str, path: Path, before_publish: Callable[[], None] | None = None
    ) -> ArtifactRef:
        with metrics.timed_store("put", self.backend, path.stat().st_size):
            return self._put(key, path, before_publish)

    def get_file(self, ref: ArtifactRef, dest: Path) -> Path:
        with metrics.timed_store("get", self.backend, ref.size):
            return self._get(ref, dest)


class LocalStore(_Measured):
    """Objects as files under <root>/<bucket>/<key>; sha256 kept in <root>/.meta/<bucket>/<key>."""

    backend = "local"

    def __init__(self, root: Path, bucket: str = "orisel") -> None:
        self.root = Path(root)
        self.bucket = bucket

    def _path(self, key: str) -> Path:
        return self.root / self.bucket / check_key(key)

    def _meta(self, key: str) -> Path:
        return self.root / ".meta" / self.bucket / f"{check_key(key)}.json"

    def _put(self, key: str, path: Path, before_publish: Callable[[], None] | None) -> ArtifactRef:
        target = self._path(key)
        with out_of_space("the artifact store"):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                size = Path(tmp).stat().st_size
                ref = ArtifactRef(self.bucket, key, sha256_file(Path(tmp)), size)
                if before_publish is not None:
                    before_publish()
                try:
                    # A hard link never replaces: of two writers exactly one creates the key.
                    os.link(tmp, target)
                except FileExistsError:
                    return _same_or_refuse(self.stat(key), ref)
                try:
                    meta = self._meta(key)
                    meta.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_json(meta, {SHA_META: ref.sha256, "size": ref.size})
                except BaseException:
                    # No object without its checksum: the write failed as a whole.
                    target.unlink(missing_ok=True)
                    raise
            finally:
                Path(tmp).unlink(missing_ok=True)
        return ref

    def stat(self, key: str) -> ArtifactRef:
        path, meta = self._path(key), self._meta(key)
        if not path.is_file():
            raise NotFound(f"artifact {self.bucket}/{key} does not exist")
        recorded = json.loads(meta.read_text()) if meta.is_file() else {}
        sha = recorded.get(SHA_META) or sha256_file(path)
        return ArtifactRef(self.bucket, key, sha, path.stat().st_size)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _get(self, ref: ArtifactRef, dest: Path) -> Path:
        src = self._path(ref.key)
        if not src.is_file():
            raise NotFound(f"artifact {self.bucket}/{ref.key} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        shutil.copyfile(src, tmp)
        return _verify_into(Path(tmp), dest, ref)

    def list(self, prefix: str) -> list[ArtifactRef]:
        base = self.root / self.bucket
        # Walk only the folder the prefix names, not the whole bucket.
        start = base / check_prefix(prefix).rpartition("/")[0]
        if not start.is_dir():
            return []
        found = sorted(p for p in start.rglob("*") if p.is_file() and not p.name.startswith("."))
        keys = [p.relative_to(base).as_posix() for p in found]
        return [self.stat(k) for k in keys if k.startswith(prefix)]

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._meta(key).unlink(missing_ok=True)

    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        return self._path(key).resolve().as_uri()


class S3Store(_Measured):
    """S3 or MinIO through the `minio` client; sha256 travels as object metadata."""

    backend = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str = "orisel",
        secure: bool = False,
        region: str | None = None,
    ) -> None:
        from minio import Minio

        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self.bucket = bucket
        self.endpoint = endpoint

    def ensure_bucket(self) -> None:
        from minio.error import S3Error

        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code in AUTH_ERRORS:
                raise FailedPrecondition(
                    f"S3 at {self.endpoint} refused the credentials ({exc.code}): check "
                    "ORISEL_S3_ACCESS_KEY and ORISEL_S3_SECRET_KEY"
                ) from exc
            raise

    def _put(self, key: str, path: Path, before_publish: Callable[[], None] | None) -> ArtifactRef:
        sha = sha256_file(path)
        size = path.stat().st_size
        ref = ArtifactRef(self.bucket, key, sha, size)
        # Checked before the write: keys under a job's prefix have one writer at a time (the
        # job's lease), so the check and the write do not race in practice.
        try:
            return _same_or_refuse(self.stat(key), ref)
        except NotFound:
            pass
        if before_publish is not None:
            before_publish()
        self.client.fput_object(
            self.bucket, check_key(key), str(path), metadata={SHA_META: sha}, part_size=PART_SIZE
        )
        return ref

    def stat(self, key: str) -> ArtifactRef:
        from minio.error import S3Error

        try:
            st = self.client.stat_object(self.bucket, check_key(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise NotFound(f"artifact {self.bucket}/{key} does not exist") from exc
            raise
        meta = {k.lower(): v for k, v in (st.metadata or {}).items()}
        sha = meta.get(f"x-amz-meta-{SHA_META}", "")
        return ArtifactRef(self.bucket, key, sha, int(st.size or 0))

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def _get(self, ref: ArtifactRef, dest: Path) -> Path:
        from minio.error import S3Error

        try:
            response = self.client.get_object(ref.bucket, check_key(ref.key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise NotFound(f"artifact {ref.bucket}/{ref.key} does not exist") from exc
            raise
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        # Hashed as it streams in, so verifying costs no second read of the file.
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as fh:
                for chunk in response.stream(1 << 20):
                    fh.write(chunk)
                    digest.update(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            response.close()
            response.release_conn()
        return _verify_into(Path(tmp), dest, ref, digest.hexdigest())

    def list(self, prefix: str) -> list[ArtifactRef]:
        objs = self.client.list_objects(self.bucket, prefix=check_prefix(prefix), recursive=True)
        return [self.stat(o.object_name) for o in objs if o.object_name]

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, check_key(key))

    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        url: str = self.client.presigned_get_object(self.bucket, check_key(key), expires=expires)
        return url


def make_store(settings: Settings) -> Publisher:
    """The artifact store the settings describe (either backend can fence its writes)."""
    if settings.store == "local":
        return LocalStore(settings.store_root, settings.bucket)
    s3 = S3Store(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        settings.bucket,
        settings.s3_secure,
        settings.s3_region,
    )
    s3.ensure_bucket()
    return s3

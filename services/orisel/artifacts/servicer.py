"""ArtifactService: stat, download, upload and list artifacts as the calling principal may
(security.access), so clients never hold the store's credentials. Bytes pass through a scratch
file on the front end: a download is verified against its sha256 before the first byte is
sent, an upload is bounded in size and written once."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from orisel.api.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from orisel.kernel.errors import AlreadyExists, FailedPrecondition, InvalidArgument, out_of_space
from orisel.rpc.jobservice import Backends
from orisel.rpc.server import Registration
from orisel.security import auth
from orisel.security.access import check_write
from orisel.store.backend import ArtifactStore, check_key, check_prefix

SERVICE_NAME = artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name
CHUNK_BYTES = 1 << 20  # well under the 4 MiB message limit
# A full disk met in a scratch file; the store names itself when it is what ran out.
SCRATCH = "the front end's scratch space"
MAX_LISTED = 1000


def _key(key: str, field: str = "key") -> str:
    try:
        return check_key(key)
    except InvalidArgument as exc:
        raise InvalidArgument(field, exc.allowed, key) from exc


class ArtifactServicer:
    def __init__(self, store: ArtifactStore, scratch: Path, max_upload_bytes: int) -> None:
        self.store = store
        self.scratch = scratch
        self.max_upload_bytes = max_upload_bytes

    def _scratch(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch

    async def Stat(self, request: Any, context: Any) -> Any:
        ref = await asyncio.to_thread(self.store.stat, _key(request.key))
        return artifacts_pb2.StatResponse(artifact=ref.to_proto())

    async def Download(self, request: Any, context: Any) -> AsyncIterator[Any]:
        ref = await asyncio.to_thread(self.store.stat, _key(request.key))
        with out_of_space(SCRATCH), tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            local = await asyncio.to_thread(self.store.get_file, ref, Path(tmp) / "blob")
            yield artifacts_pb2.DownloadResponse(artifact=ref.to_proto())
            with local.open("rb") as fh:
                while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
                    yield artifacts_pb2.DownloadResponse(chunk=chunk)

    async def Upload(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "key":
            raise InvalidArgument("key", "the artifact's key, in the first message", None)
        key = check_write(auth.current(), _key(first.key))
        with out_of_space(SCRATCH), tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            path = Path(tmp) / "blob"
            size = 0
            with path.open("wb") as fh:
                async for msg in request_iterator:
                    if msg.WhichOneof("part") != "chunk":
                        raise InvalidArgument(
                            "chunk", "bytes after the key", msg.WhichOneof("part")
                        )
                    size += len(msg.chunk)
                    if size > self.max_upload_bytes:
                        raise InvalidArgument(
                            "chunk", f"at most {self.max_upload_bytes} bytes in all", size
                        )
                    await asyncio.to_thread(fh.write, msg.chunk)
            try:
                ref = await asyncio.to_thread(self.store.put_file, key, path)
            except FailedPrecondition as exc:
                raise AlreadyExists(str(exc)) from exc
        return artifacts_pb2.UploadResponse(artifact=ref.to_proto())

    async def List(self, request: Any, context: Any) -> Any:
        try:
            prefix = check_prefix(request.prefix)
        except InvalidArgument as exc:
            raise InvalidArgument("prefix", exc.allowed, request.prefix) from exc
        refs = await asyncio.to_thread(self.store.list, prefix)
        return artifacts_pb2.ListResponse(artifacts=[r.to_proto() for r in refs[:MAX_LISTED]])


def registration(b: Backends) -> Registration:
    servicer = ArtifactServicer(
        b.store, b.settings.work_dir / "uploads", b.settings.max_upload_bytes
    )
    return artifacts_pb2_grpc.add_ArtifactServiceServicer_to_server, servicer, SERVICE_NAME

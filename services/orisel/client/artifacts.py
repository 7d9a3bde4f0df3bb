"""Artifacts through ArtifactService: the client holds a token, never the store's keys."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orisel.api.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from orisel.client.channel import open_channel
from orisel.kernel.errors import DataError, FailedPrecondition
from orisel.store.backend import ArtifactRef

CHUNK_BYTES = 1 << 20


class ArtifactClient:
    def __init__(self, address: str) -> None:
        self.channel = open_channel(address)
        self.stub = artifacts_pb2_grpc.ArtifactServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.channel.close()

    def stat(self, key: str) -> ArtifactRef:
        return ArtifactRef.from_proto(self.stub.Stat(artifacts_pb2.StatRequest(key=key)).artifact)

    def download(self, key: str, out: Path) -> ArtifactRef:
        """`key` into `out`, written to a temporary sibling and moved there only once its
        sha256 matches the store's; an existing `out` is never replaced."""
        if out.exists():
            raise FailedPrecondition(f"{out} exists: choose another --out")
        out.parent.mkdir(parents=True, exist_ok=True)
        stream = self.stub.Download(artifacts_pb2.DownloadRequest(key=key))
        ref: ArtifactRef | None = None
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                for msg in stream:
                    if msg.WhichOneof("part") == "artifact":
                        ref = ArtifactRef.from_proto(msg.artifact)
                    else:
                        digest.update(msg.chunk)
                        fh.write(msg.chunk)
            if ref is None or digest.hexdigest() != ref.sha256:
                raise DataError(f"{key}: the bytes received do not match the store's sha256")
            os.link(tmp, out)  # fails if `out` appeared meanwhile: nothing is overwritten
        finally:
            os.unlink(tmp)
        return ref

    def upload(self, path: Path, key: str) -> ArtifactRef:
        def messages() -> Iterator[artifacts_pb2.UploadRequest]:
            yield artifacts_pb2.UploadRequest(key=key)
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK_BYTES):
                    yield artifacts_pb2.UploadRequest(chunk=chunk)

        return ArtifactRef.from_proto(self.stub.Upload(messages()).artifact)

    def list(self, prefix: str) -> list[ArtifactRef]:
        page = self.stub.List(artifacts_pb2.ListRequest(prefix=prefix))
        return [ArtifactRef.from_proto(a) for a in page.artifacts]

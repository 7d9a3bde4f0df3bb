"""A full disk on the server's side, for real (tmpfs mounts that fill): the embedded home's
job database and artifact store, and the front end's scratch space. Every call that needs
the space is RESOURCE_EXHAUSTED naming what ran out, never a server path, leaves nothing
behind, and works again once space was freed."""

from __future__ import annotations

import inspect
import os
import sqlite3
from pathlib import Path

import grpc
import pytest

from orisel.api.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from orisel.kernel import errors
from orisel.kernel.errors import ResourceExhausted
from orisel.rpc.server import STATUS
from orisel.runtime.settings import Settings
from orisel.server.launch import start_front_end
from orisel.store.backend import LocalStore
from tests.faults.jobs import submit
from tests.fulldisk import files_under, filled, tmpfs

BLOB = b"weights" * 1000


def _upload(ch: grpc.Channel, key: str, data: bytes) -> str:
    stub = artifacts_pb2_grpc.ArtifactServiceStub(ch)
    parts = [artifacts_pb2.UploadRequest(key=key), artifacts_pb2.UploadRequest(chunk=data)]
    return str(stub.Upload(iter(parts), timeout=30).artifact.sha256)


def _download(ch: grpc.Channel, key: str) -> bytes:
    stub = artifacts_pb2_grpc.ArtifactServiceStub(ch)
    return b"".join(m.chunk for m in stub.Download(artifacts_pb2.DownloadRequest(key=key)))


def _refused(call: object, *args: object) -> str:
    """The details of a call that must fail RESOURCE_EXHAUSTED."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
    return str(info.value.details())


def test_a_full_disk_is_resource_exhausted_naming_what_ran_out(
    tmp_path: Path, python_archive: Path
) -> None:
    with tmpfs(tmp_path / "home", "8m") as home, tmpfs(tmp_path / "scratch", "8m") as scratch:
        settings = Settings(
            database_url=f"sqlite:///{home / 'jobs.sqlite'}",
            store="local",
            store_root=home / "store",
            work_dir=scratch / "work",
            cache_dir=tmp_path / "cache",
            data=python_archive,
            grpc_port=0,
            allow_plaintext=True,
            auth="off",
        )
        server = start_front_end(settings, ("training",))
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                address = f"127.0.0.1:{server.port}"
                _upload(ch, "models/a/blob.bin", BLOB)
                submit(address, "before")
                # The write-ahead log emptied, so the next write must grow a file.
                with sqlite3.connect(home / "jobs.sqlite") as c:
                    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                stored = files_under(home / "store")
                with filled(home):
                    said = [_refused(_upload, ch, "models/b/blob.bin", BLOB)]
                    assert said[0].startswith("the artifact store is out of space")
                    said.append(_refused(submit, address, "while-full"))
                    assert said[1].startswith("the job database is out of disk space")
                    assert files_under(home / "store") == stored  # no part of the blob
                with filled(scratch):
                    said.append(_refused(_upload, ch, "models/c/blob.bin", BLOB))
                    said.append(_refused(_download, ch, "models/a/blob.bin"))
                    assert said[2] == said[3]
                    assert said[2].startswith("the front end's scratch space is out of space")
                assert files_under(scratch) == []
                assert not any(str(tmp_path) in s or "/work" in s for s in said), said
                # Space freed, the same calls work.
                assert _upload(ch, "models/b/blob.bin", BLOB) == _upload(
                    ch, "models/c/blob.bin", BLOB
                )
                assert _download(ch, "models/a/blob.bin") == BLOB
                submit(address, "while-full")
        finally:
            server.stop(0)


def test_an_object_whose_checksum_finds_no_space_is_not_left_behind(tmp_path: Path) -> None:
    """Room for the object's bytes but not for its recorded checksum: the write fails as a
    whole, since an object without its checksum would be read back unverified."""
    page = os.sysconf("SC_PAGE_SIZE")
    blob = tmp_path / "blob"
    blob.write_bytes(b"w" * page)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        store = LocalStore(disk / "store")
        store.put_file("models/a/first.bin", blob)  # the folders the next write needs
        stored = files_under(disk)
        with filled(disk, leave=page), pytest.raises(ResourceExhausted) as info:
            store.put_file("models/a/blob.bin", blob)
        assert str(info.value).startswith("the artifact store is out of space")
        assert files_under(disk) == stored
        assert not store.exists("models/a/blob.bin")


def test_every_domain_error_has_a_status_of_its_own() -> None:
    """An error class missing from the map would reach clients as INVALID_ARGUMENT."""
    domain = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.OriselError) and cls is not errors.OriselError
    }
    assert domain == {cls for cls, _ in STATUS}
    assert dict(STATUS)[ResourceExhausted] == grpc.StatusCode.RESOURCE_EXHAUSTED

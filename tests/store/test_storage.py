"""Both artifact-store backends against the same behaviour; S3 is a real moto server."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orisel.kernel.errors import DataError, FailedPrecondition, InvalidArgument, NotFound
from orisel.store.backend import (
    ArtifactRef,
    ArtifactStore,
    LocalStore,
    S3Store,
    check_key,
    get_bytes,
    put_bytes,
    put_if_absent,
)
from tests.procs import moto_server


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3 = S3Store(
        request.getfixturevalue("moto_endpoint"),
        "testing",
        "testing",
        bucket=f"b{os.getpid()}{abs(hash(tmp_path)) % 10**6}",
        region="us-east-1",
    )
    s3.ensure_bucket()
    return s3


def test_put_stat_get_roundtrip(store: ArtifactStore, tmp_path: Path) -> None:
    ref = put_bytes(store, "runs/a/best.pt", b"weights" * 1000)
    assert ref.size == 7000
    assert store.stat("runs/a/best.pt") == ref
    assert get_bytes(store, ref) == b"weights" * 1000
    assert store.exists("runs/a/best.pt")
    assert not store.exists("runs/a/other.pt")


def test_list_by_prefix_and_delete(store: ArtifactStore) -> None:
    for key in ("runs/a/1.pt", "runs/a/2.pt", "runs/b/1.pt"):
        put_bytes(store, key, key.encode())
    assert [r.key for r in store.list("runs/a/")] == ["runs/a/1.pt", "runs/a/2.pt"]
    store.delete("runs/a/1.pt")
    assert [r.key for r in store.list("runs/")] == ["runs/a/2.pt", "runs/b/1.pt"]


def test_a_wrong_checksum_is_refused_and_leaves_nothing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    ref = put_bytes(store, "x.bin", b"abc")
    forged = ArtifactRef(ref.bucket, ref.key, "0" * 64, ref.size)
    dest = tmp_path / "out" / "x.bin"
    with pytest.raises(DataError, match="is corrupt"):
        store.get_file(forged, dest)
    assert not dest.exists()
    assert not list(dest.parent.iterdir())


def test_missing_object(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        store.stat("nope")
    with pytest.raises(NotFound):
        store.get_file(ArtifactRef(store.bucket, "nope", "0" * 64, 0), tmp_path / "x")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "dir/"])
def test_bad_keys(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^key: must be a relative path"):
        store.stat(key)


def test_url_serves_the_object(store: ArtifactStore) -> None:
    put_bytes(store, "reports/r.md", b"# report")
    with urllib.request.urlopen(store.url("reports/r.md")) as resp:
        assert resp.read() == b"# report"


@pytest.mark.integration
def test_multipart_upload_of_a_large_checkpoint(moto_endpoint: str, tmp_path: Path) -> None:
    s3 = S3Store(moto_endpoint, "testing", "testing", bucket="big", region="us-east-1")
    s3.ensure_bucket()
    big = tmp_path / "big.pt"
    big.write_bytes(os.urandom(40 * 2**20))  # > PART_SIZE: uploaded in parts
    ref = s3.put_file("runs/big/best.pt", big)
    assert s3.stat("runs/big/best.pt").sha256 == ref.sha256
    out = s3.get_file(ref, tmp_path / "back.pt")
    assert out.read_bytes() == big.read_bytes()


def test_objects_are_written_once(store: ArtifactStore, tmp_path: Path) -> None:
    first = put_bytes(store, "once/a.json", b'{"v": 1}')
    assert put_bytes(store, "once/a.json", b'{"v": 1}') == first  # the same bytes: a no-op
    with pytest.raises(FailedPrecondition, match="exists with other content"):
        put_bytes(store, "once/a.json", b'{"v": 2}')
    assert get_bytes(store, store.stat("once/a.json")) == b'{"v": 1}'
    assert put_if_absent(store, "once/a.json", _blob(tmp_path, b"other")) == first


def _blob(folder: Path, data: bytes) -> Path:
    path = folder / f"blob-{len(data)}-{data[:8].hex()}"
    path.write_bytes(data)
    return path


def test_racing_writers_of_one_key_leave_one_whole_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "race")
    for round_ in range(50):
        key = f"race/{round_}.bin"
        blobs = [_blob(tmp_path, bytes([i]) * 100_000) for i in range(8)]

        def put(path: Path, key: str = key) -> str:
            try:
                return store.put_file(key, path).sha256
            except FailedPrecondition:
                return "refused"

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(put, blobs))
        winners = [o for o in outcomes if o != "refused"]
        assert len(winners) == 1  # exactly one writer created the key
        data = get_bytes(store, store.stat(key))
        assert data == bytes([data[0]]) * 100_000  # whole, one writer's bytes
        assert store.stat(key).sha256 == winners[0]


@pytest.mark.parametrize("prefix", ["/etc", "/etc/passwd", "../x", "a/../../b", "a//b", "./"])
def test_a_listing_never_leaves_the_bucket(tmp_path: Path, prefix: str) -> None:
    """Found by the fuzzer: an absolute prefix listed the server's /etc."""
    store = LocalStore(tmp_path / "store")
    with pytest.raises(InvalidArgument, match="key"):
        store.list(prefix)


@pytest.mark.parametrize(
    "key",
    # The last two found by the fuzzer: a name of 300 emoji (1,200 bytes) failed in the file
    # system (INTERNAL) though it had under 1,024 characters.
    [".", "a/./b", "a//b", "/abs", "a/", "x\x7fy", "a\x00b", "d/" + "\U0001f600" * 300, "é" * 600],
)
def test_keys_are_named_relative_parts(key: str) -> None:
    with pytest.raises(InvalidArgument):
        check_key(key)

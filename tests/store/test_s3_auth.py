"""The S3 store against a server that checks request signatures (nanio): right keys work,
multipart and presigned URLs included; wrong keys fail with a clear error."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orisel.kernel.errors import FailedPrecondition
from orisel.store.backend import PART_SIZE, S3Store
from tests.procs import free_port, loopback_server

pytestmark = pytest.mark.integration
ACCESS, SECRET = "orisel-test", "orisel-test-secret-0123456789"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "NANIO_ACCESS_KEY": ACCESS, "NANIO_SECRET_KEY": SECRET}
    data = tmp_path_factory.mktemp("nanio")
    cmd = [
        str(Path(sys.executable).parent / "nanio"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--no-access-log",
    ]
    with loopback_server(cmd, port, env, "nanio") as address:
        yield address


def test_signed_roundtrip_with_multipart_and_presigned_url(endpoint: str, tmp_path: Path) -> None:
    store = S3Store(endpoint, ACCESS, SECRET, "signed")
    store.ensure_bucket()
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(PART_SIZE + 12345))  # more than one part
    ref = store.put_file("runs/x/checkpoints/big.pt", src)
    assert store.stat(ref.key) == ref
    got = store.get_file(ref, tmp_path / "got.bin")
    assert got.read_bytes() == src.read_bytes()
    url = store.url(ref.key)
    with urllib.request.urlopen(url) as response:
        assert response.read() == src.read_bytes()
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered)
    assert err.value.code == 403


def test_wrong_secret_is_refused_with_a_clear_error(endpoint: str) -> None:
    store = S3Store(endpoint, ACCESS, "not-the-secret", "signed")
    with pytest.raises(FailedPrecondition, match="refused the credentials"):
        store.ensure_bucket()

"""What reaches a server before any handler: bytes that are no message of the method's
type are INVALID_ARGUMENT (never UNKNOWN), and every kind of handler, bidirectional streams
(reflection) included, authenticates first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from orisel.security.auth import Tokens
from orisel.server.launch import start_front_end
from tests.security.fuzz import malformed, methods
from tests.stack import Stack, stack

pytestmark = pytest.mark.service  # servicers in this process, on a real database


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("wire"), auth="token") as s:
        s.serve(("scoring",))
        yield s


@pytest.fixture(scope="module")
def token(live: Stack) -> str:
    return Tokens(live.db).create("alice")


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _raw(channel: grpc.Channel, path: str, client_streams: bool, server_streams: bool) -> Any:
    """The method at `path` taking and giving bytes: what any client may put on the wire."""
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[client_streams, server_streams]
    return kind(path)


def _answer(call: Any, payload: bytes, streams: tuple[bool, bool], token: str) -> grpc.RpcError:
    client_streams, server_streams = streams
    request = iter([payload]) if client_streams else payload
    metadata = _md(token) if token else None

    def send() -> None:
        answer = call(request, metadata=metadata, timeout=10)
        if server_streams:
            list(answer)

    with pytest.raises(grpc.RpcError) as err:
        send()
    return err.value


def test_undecodable_requests_are_invalid_argument_naming_the_request(
    live: Stack, token: str
) -> None:
    served = [m for m in methods() if m[0] in ("JobService", "ArtifactService", "ScoringService")]
    assert len(served) >= 10
    with grpc.insecure_channel(live.address) as channel:
        for service, name, cls, _, client_streams, server_streams in served:
            path = f"/{cls.DESCRIPTOR.file.package}.{service}/{name}"
            call = _raw(channel, path, client_streams, server_streams)
            for why, payload in malformed(cls).items():
                err = _answer(call, payload, (client_streams, server_streams), token)
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, why, err.details())
                assert err.details().startswith("request: must be a well-formed "), err.details()
            # Credentials come first: a caller without them learns nothing of the schema.
            err = _answer(call, b"\x08\xff", (client_streams, server_streams), "")
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, path


def _services(channel: grpc.Channel, token: str = "") -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    answers = list(stub.ServerReflectionInfo(ask, metadata=_md(token) if token else None))
    return {s.name for s in answers[0].list_services_response.service}


def test_reflection_is_behind_authentication_unless_opened(
    live: Stack, token: str, tmp_path: Path
) -> None:
    with grpc.insecure_channel(live.address) as channel:
        with pytest.raises(grpc.RpcError) as err:
            _services(channel)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "orisel.api.jobs.v1.JobService" in _services(channel, token)
    opened = live.settings.model_copy(update={"open_reflection": True, "work_dir": tmp_path})
    server = start_front_end(opened, ["scoring"])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert "orisel.api.scoring.v1.ScoringService" in _services(channel)
    finally:
        server.stop(0)

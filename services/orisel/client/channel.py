"""How a client reaches a server: which address (a flag, the settings, or a local
`orisel up` found by its runtime file), TLS unless the server is on this machine's loopback
without it, and a bearer token on every call.

The token comes from the settings (ORISEL_TOKEN), else, for a loopback address, from the
runtime file an embedded `orisel up` wrote for that address (mode 0600, as Jupyter does), so
its owner's local commands work without copying a secret around.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from orisel.runtime.local import find_local, runtime_file
from orisel.runtime.settings import Settings, get_settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_SERVER = "127.0.0.1:50051"


def server_address(server: str | None, home: Path | None, settings: Settings) -> str:
    """Where a client command connects: --server, else ORISEL_SERVER, else the local
    `orisel up` (the one serving --home, or the only one running), else the default port."""
    if server:
        return server
    if settings.server:
        return settings.server
    local = find_local(home)
    return local.address if local else DEFAULT_SERVER


def _loopback(address: str) -> bool:
    return address.rpartition(":")[0] in LOOPBACK_HOSTS


def token_for(address: str, settings: Settings) -> str | None:
    if settings.token is not None:
        return settings.token.get_secret_value()
    path = runtime_file(address)
    if _loopback(address) and path.is_file():
        found: str = json.loads(path.read_text())["token"]
        return found
    return None


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
):
    """Adds `authorization: Bearer <token>` to every call (works on plaintext loopback
    channels too, where call credentials are not allowed)."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        return _Details(details, [*(details.metadata or ()), self.header])

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return continuation(self._with_token(details), requests)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def open_channel(address: str, settings: Settings | None = None) -> grpc.Channel:
    """A channel to `address` with TLS (the settings' CA and client certificate, or the
    system's roots) unless it is a loopback address and no CA is configured."""
    settings = settings or get_settings()
    if settings.ca is None and settings.client_cert is None and _loopback(address):
        channel = grpc.insecure_channel(address)
    else:
        cert, key = settings.client_cert, settings.client_key
        creds = grpc.ssl_channel_credentials(
            root_certificates=settings.ca.read_bytes() if settings.ca else None,
            private_key=key.read_bytes() if key else None,
            certificate_chain=cert.read_bytes() if cert else None,
        )
        channel = grpc.secure_channel(address, creds)
    token = token_for(address, settings)
    return grpc.intercept_channel(channel, _Bearer(token)) if token else channel

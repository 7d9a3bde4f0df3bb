"""Domain errors: one place that says what went wrong and how to fix it.

The CLI turns these into one line and a non-zero exit; the gRPC server (rpc/server.py) maps
each class to a status code, so every layer reports a bad input the same way.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

# A full disk, or a quota spent: space someone can free.
FULL = (errno.ENOSPC, errno.EDQUOT)


class OriselError(Exception):
    """Base of every error a user can cause and fix."""


class InvalidArgument(OriselError):
    """A field holds a value outside what is allowed."""

    def __init__(self, field: str, allowed: str, got: object) -> None:
        self.field = field
        self.allowed = allowed
        self.got = got
        shown = repr(got)
        # A hostile value (a 5,000-character id) must not make the error message huge.
        if len(shown) > 80:
            shown = f"{shown[:60]}... ({len(shown)} characters)"
        super().__init__(f"{field}: must be {allowed} (got {shown})")


class NotFound(OriselError):
    """A named thing (file, model, layer, checkpoint) does not exist."""


class AlreadyExists(OriselError):
    """A unique name (an idempotency key) is taken by something different."""


class FailedPrecondition(OriselError):
    """The request is valid but the state does not allow it (e.g. resuming another model)."""


class DataError(OriselError):
    """A data source is missing, corrupt or laid out in an unknown way."""


class Unavailable(OriselError):
    """A dependency (database, broker, store) cannot be reached right now; retry later."""


class Unauthenticated(OriselError):
    """The caller sent no credentials, or credentials that do not verify."""


class PermissionDenied(OriselError):
    """The caller is known but may not do this (an admin-only action)."""


class ResourceExhausted(OriselError):
    """Space ran out on the server's side (the artifact store's disk, the job database's, a
    scratch folder): a passing condition an operator fixes, after which the same call works."""


@contextlib.contextmanager
def out_of_space(what: str) -> Iterator[None]:
    """A full disk met inside the block as ResourceExhausted naming `what` ran out, never the
    file: an OSError carries the server's paths, which are the operator's, not a client's."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL:
            raise
        raise ResourceExhausted(
            f"{what} is out of space ({exc.strerror}): retry once space was freed"
        ) from exc

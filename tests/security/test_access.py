"""The store as a caller sees it: what they may not read does not exist for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.kernel.errors import NotFound
from orisel.security import auth
from orisel.security.access import GuardedStore
from orisel.store.backend import LocalStore, put_bytes


def test_a_key_the_caller_may_not_read_does_not_exist_for_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate.upgrade(url)
    db = JobDB(url)
    inner = LocalStore(tmp_path / "store")
    put_bytes(inner, "users/alice/notes.txt", b"hers")
    put_bytes(inner, "datasets/cifar.tar.gz", b"shared")
    put_bytes(inner, "activations/alice/abc/summary.json", b"{}")
    store = GuardedStore(inner, db)
    cases = {
        # her file, a shared one, a file not there, her networks' stored responses
        "alice": (True, True, False, True),
        "bob": (False, True, False, False),
    }
    try:
        for name, want in cases.items():
            token = auth.CURRENT.set(auth.Principal(name))
            try:
                got = tuple(
                    store.exists(k)
                    for k in (
                        "users/alice/notes.txt",
                        "datasets/cifar.tar.gz",
                        "users/x/y",
                        "activations/alice/abc/summary.json",
                    )
                )
                assert got == want, name
                if not want[0]:
                    with pytest.raises(NotFound):  # reading it says the same
                        store.stat("users/alice/notes.txt")
            finally:
                auth.CURRENT.reset(token)
    finally:
        db.close()

"""Local servers (`orisel up`) and how clients on the same machine find them.

Each running `orisel up` records its address, home folder, owner's token and process id in a
runtime file (mode 0600, in a 0700 folder, as Jupyter does). A client command given neither
--server nor ORISEL_SERVER reads these to reach it; `--home H` picks the one serving H. Nothing
here imports the database or gRPC: every client command loads this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from orisel.kernel.errors import FailedPrecondition
from orisel.runtime.settings import DEFAULT_HOME

RUNTIME_DIR = DEFAULT_HOME / "runtime"


@dataclass(frozen=True)
class LocalServer:
    address: str
    token: str
    home: Path
    pid: int


def runtime_file(address: str) -> Path:
    return RUNTIME_DIR / f"server-{address.replace(':', '-').strip('[]')}.json"


def write_runtime(address: str, token: str, home: Path) -> Path:
    """Record a local server's address and token for its owner only (0600)."""
    RUNTIME_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = runtime_file(address)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        record = {"address": address, "token": token, "home": str(home), "pid": os.getpid()}
        json.dump(record, fh)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, though not ours to signal
        return True
    return True


def local_servers() -> list[LocalServer]:
    """Every running local server with a readable runtime file, by address. A file left by a
    server that was killed (its process is gone) is skipped."""
    found = []
    for path in sorted(RUNTIME_DIR.glob("server-*.json")):
        try:
            record = json.loads(path.read_text())
            address, token = str(record["address"]), str(record["token"])
            server = LocalServer(address, token, Path(record["home"]), int(record["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(server.pid):
            found.append(server)
    return found


def find_local(home: Path | None = None) -> LocalServer | None:
    """The local server serving `home`, or the only one running when no home is given (None
    when none runs). Refuses when the choice would be a guess."""
    servers = local_servers()
    if home is not None:
        wanted = home.resolve()
        for server in servers:
            if server.home.resolve() == wanted:
                return server
        raise FailedPrecondition(
            f"no running `orisel up --home {home}` on this machine: start it, or pass --server"
        )
    if len(servers) > 1:
        listed = ", ".join(f"{s.address} (--home {s.home})" for s in servers)
        raise FailedPrecondition(
            f"{len(servers)} local servers run: {listed}; pass --home or --server to pick one"
        )
    return servers[0] if servers else None

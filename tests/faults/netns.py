"""Another host on this machine: a network namespace joined to this one by a veth pair, so
a process there reaches this host's servers over a link that a test can cut (a partition:
packets dropped, no reset) and restore, cut from one server only, or make lossy. Needs root,
iproute2 and nftables (deploy/dev/services.sh installs it). This kernel has no netem qdisc:
packets are dropped by nftables in the namespace, and latency is added by the proxy that
carries a link (tests.control.proxy)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO


def available() -> bool:
    """Whether this machine lets a test make network namespaces."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"orisel-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], check=True)
    return made


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


SLOTS = Path("/run/orisel-hosts")  # a lock file per slot, held while a host uses it
MAX_SLOT = 250


def _take_slot() -> tuple[int, IO[bytes]]:
    """The lowest slot no living process holds (its lock goes with its holder, a crashed
    run's included), with the lock file that holds it; what a dead holder left on that
    slot (its namespaces and link) is removed first."""
    SLOTS.mkdir(parents=True, exist_ok=True)
    for slot in range(1, MAX_SLOT + 1):
        lock = open(SLOTS / f"{slot}.lock", "wb")  # noqa: SIM115 - held past this function
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _clean(slot)
        return slot, lock
    raise RuntimeError(f"all {MAX_SLOT} host slots in {SLOTS} are held")


def _clean(slot: int) -> None:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith(f"orisel{slot}-"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", f"orisel{slot}a"], capture_output=True)


class Host:
    """Namespace orisel<slot>-`name` at 10.251.<slot>.2; this host is 10.251.<slot>.1
    (`here`) on the link. The slot is the lowest free one (tests.faults.netns.SLOTS), so
    hosts of runs side by side (pytest-xdist, a soak beside the tests) never collide."""

    def __init__(self, name: str) -> None:
        self.label = name
        self.slot = 0
        self._lock: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return f"orisel{self.slot}-{self.label}"

    @property
    def here(self) -> str:
        return f"10.251.{self.slot}.1"

    @property
    def there(self) -> str:
        return f"10.251.{self.slot}.2"

    @property
    def _link(self) -> str:
        return f"orisel{self.slot}a"  # this end; interface names hold 15 characters

    @property
    def _far(self) -> str:
        return f"orisel{self.slot}b"

    def command(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def partition(self) -> None:
        _ip("link", "set", self._link, "down")

    def heal(self) -> None:
        """The link up, and every rule of cut() and lossy() gone."""
        _ip("link", "set", self._link, "up")
        # Addresses left unresolved while the link was down stay so for seconds (a connect
        # fails at once, no route to host): forgotten at both ends, they are asked again.
        subprocess.run(["ip", "neigh", "flush", "dev", self._link], capture_output=True)
        subprocess.run(
            self.command(["ip", "neigh", "flush", "dev", self._far]), capture_output=True
        )
        subprocess.run(
            self.command(["nft", "delete", "table", "inet", "orisel"]), capture_output=True
        )

    def cut(self, port: int) -> None:
        """Drop every packet to and from this host's `port`: cut off from that one server
        (the database) while the rest of the link, its clients included, still works."""
        self._rules(
            f"ip saddr {self.here} tcp sport {port} drop",
            f"ip daddr {self.here} tcp dport {port} drop",
        )

    def lossy(self, percent: int) -> None:
        """Drop `percent` % of the link's packets at random, each way."""
        rule = f"numgen random mod 100 < {percent} drop"
        self._rules(f'iifname "{self._far}" {rule}', f'oifname "{self._far}" {rule}')

    def _rules(self, incoming: str, outgoing: str) -> None:
        ruleset = (
            "table inet orisel {\n"
            f"  chain in {{ type filter hook input priority 0; {incoming}; }}\n"
            f"  chain out {{ type filter hook output priority 0; {outgoing}; }}\n"
            "}\n"
        )
        subprocess.run(
            self.command(["nft", "-f", "-"]),
            input=ruleset.encode(),
            check=True,
            capture_output=True,
        )

    def __enter__(self) -> Host:
        self.slot, self._lock = _take_slot()
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self._link, "type", "veth", "peer", "name", self._far)
            _ip("link", "set", self._far, "netns", self.name)
            _ip("addr", "add", f"{self.here}/24", "dev", self._link)
            _ip("link", "set", self._link, "up")
            inside = ("netns", "exec", self.name, "ip")
            _ip(*inside, "addr", "add", f"{self.there}/24", "dev", self._far)
            _ip(*inside, "link", "set", self._far, "up")
            _ip(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Deleting the namespace deletes its end of the pair, and with it this end.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self._link], capture_output=True)
        if self._lock is not None:
            self._lock.close()  # the slot is free again
            self._lock = None

"""Another host on this machine: a network namespace joined to this one by a veth pair, so
a process there reaches this host's servers over a link that a test can cut (a partition:
packets dropped, no reset) and restore, cut from one server only, or make lossy. Needs root,
iproute2 and nftables (deploy/dev/services.sh installs it). This kernel has no netem qdisc:
packets are dropped by nftables in the namespace, and latency is added by the proxy that
carries a link (tests.control.proxy)."""

from __future__ import annotations

import os
import shutil
import subprocess
from types import TracebackType


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


class Host:
    """Namespace `name`, at 10.250.`n`.2; this host is 10.250.`n`.1 (`here`) on the link."""

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.here = f"10.250.{n}.1"
        self.there = f"10.250.{n}.2"
        self._link = f"orisel{n}a"  # this end; interface names hold 15 characters

    def command(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def partition(self) -> None:
        _ip("link", "set", self._link, "down")

    def heal(self) -> None:
        """The link up, and every rule of cut() and lossy() gone."""
        _ip("link", "set", self._link, "up")
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
        far = self._link.removesuffix("a") + "b"
        rule = f"numgen random mod 100 < {percent} drop"
        self._rules(f'iifname "{far}" {rule}', f'oifname "{far}" {rule}')

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
        far = self._link.removesuffix("a") + "b"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._link, "type", "veth", "peer", "name", far)
            _ip("link", "set", far, "netns", self.name)
            _ip("addr", "add", f"{self.here}/24", "dev", self._link)
            _ip("link", "set", self._link, "up")
            inside = ("netns", "exec", self.name, "ip")
            _ip(*inside, "addr", "add", f"{self.there}/24", "dev", far)
            _ip(*inside, "link", "set", far, "up")
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

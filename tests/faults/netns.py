"""Another host on this machine: a network namespace joined to this one by a veth pair, so
a process there reaches this host's servers over a link that a test can cut (a partition:
packets dropped, no reset) and restore. Needs root and iproute2."""

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
        _ip("link", "set", self._link, "up")

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

"""The hosts of tests.faults.netns: each on a slot no other living run holds, reachable over
its own link, and what a crashed run left on a slot removed when the slot is taken again."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from tests.faults import netns

pytestmark = [
    pytest.mark.integration,  # real processes: a host's, and one killed with its host up
    pytest.mark.skipif(not netns.available(), reason="needs root and iproute2 (namespaces)"),
]


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split(" ", 1)[0] for line in listed.splitlines()}


def _reaches(host: netns.Host) -> bool:
    """Whether a process on `host` connects to a server listening on this end of its link."""
    with socket.create_server((host.here, 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket; socket.create_connection(('{host.here}', {port}), 3).close()"
        return subprocess.run(host.command([sys.executable, "-c", code])).returncode == 0


def test_hosts_at_once_take_slots_of_their_own() -> None:
    with netns.Host("one") as a, netns.Host("two") as b:
        assert a.slot != b.slot
        assert {a.name, b.name} <= _namespaces()
        assert a.name == f"orisel{a.slot}-one"
        assert a.here == f"10.251.{a.slot}.1"
        assert a.there == f"10.251.{a.slot}.2"
        assert _reaches(a)
        assert _reaches(b)
        b.partition()
        assert not _reaches(b)
        assert _reaches(a)  # one host's link cut, the other's not
        b.heal()
        assert _reaches(b)  # at once: nothing learnt while it was down is kept
    assert not {a.name, b.name} & _namespaces()


def test_a_crashed_runs_host_is_removed_when_its_slot_is_taken() -> None:
    """A run killed with its host up leaves the namespace and link behind, but not the
    slot's lock: the next host to take that slot removes them first."""
    code = (
        "import sys, time; from tests.faults.netns import Host; "
        "h = Host('crashed').__enter__(); print(h.slot, flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    slot = int(child.stdout.readline())
    stale = f"orisel{slot}-crashed"
    assert stale in _namespaces()
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert stale in _namespaces()  # left behind
    with netns.Host("after") as host:
        # The freed slot was the lowest free one: this host took it, or a run beside this
        # one did just before; whoever took it removed what the crashed run left.
        assert stale not in _namespaces()
        assert _reaches(host)

"""What a summary records of the network it analysed."""

from __future__ import annotations

from orisel.extraction.network import Network
from orisel.models.digest import state_sha256


def network_record(net: Network) -> dict[str, object]:
    """Where the network came from and, for one orisel did not train (no checkpoint
    checksum), the checksum of the weights analysed: a module built in Python has no file,
    and a file's weights may differ from those run (a module changed after loading)."""
    if net.source.get("checkpoint_sha256"):
        return dict(net.source)
    return {**net.source, "weights_sha256": state_sha256(net.model)}

"""orisel: orientation and class selectivity of single units, and their causal role by ablation.

The Python API (`orisel.Network`, `orisel.tune`, `orisel.ablate`, ...) lives in
`orisel.library` and is loaded on first use, so that importing any part of the package (a
front end, say) never imports torch.
"""

from typing import Any

__version__ = "0.1.0"

API = (
    "Network",
    "ablate",
    "cifar10",
    "class_selectivity",
    "invariance",
    "load",
    "responses",
    "tune",
)


def __getattr__(name: str) -> Any:
    if name in API:
        from orisel import library

        return getattr(library, name)
    raise AttributeError(f"module 'orisel' has no attribute {name!r}")

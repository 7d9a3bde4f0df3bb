"""orisel: orientation and class selectivity of single units, and their causal role by ablation.

The Python API (`orisel.Network`, `orisel.tune`, `orisel.ablate`, ...) lives in
`orisel.library` and is loaded on first use, so that importing any part of the package (a
front end, say) never imports torch.
"""

from typing import Any

from orisel.kernel.provenance import package_version

__version__ = package_version()


def __getattr__(name: str) -> Any:
    import importlib

    library = importlib.import_module("orisel.library")
    if name in library.__all__:
        return getattr(library, name)
    raise AttributeError(f"module 'orisel' has no attribute {name!r}")

"""The import contract: orisel's modules in layers, each importing only from layers below it
(and within its own group). `make lint` runs this file; tests/test_layers.py checks that it
holds and that it catches a wrong import.

    kernel -> runtime -> store -> control -> security -> rpc
           -> models, data -> science -> training, extraction -> scoring, ablation
           -> report -> analyses
           -> service tasks and servicers -> pipeline -> front ends (client, server, library)

The numerical packages (models, data, science, report, analyses) may take from the control-plane
packages below them only the kernel: a selectivity index never needs a database, a store or a
setting, and keeping them out keeps those packages importable and testable alone.

Imports inside `if TYPE_CHECKING:` count too: a type names a dependency just as a call does.
"""

from __future__ import annotations

import ast
import sys
from fnmatch import fnmatchcase
from pathlib import Path

# Lowest first. Within a layer, groups (separated by "|") may not import one another.
LAYERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("orisel.kernel", "orisel.api"),),
    (("orisel.runtime",),),
    (("orisel.store",),),
    (("orisel.control",),),
    (("orisel.security",),),
    (("orisel.rpc",),),
    (("orisel.models",), ("orisel.data",)),
    (("orisel.science",),),
    (("orisel.training",), ("orisel.extraction",)),
    (("orisel.scoring",), ("orisel.ablation",)),
    (("orisel.report",),),
    (("orisel.analyses",),),
    (("orisel.*.servicer", "orisel.*.tasks", "orisel.artifacts"),),
    (("orisel.pipeline", "orisel.pipeline.servicer", "orisel.pipeline.tasks"),),
    (("orisel", "orisel.__main__", "orisel.library", "orisel.client", "orisel.server"),),
)


NUMERICAL = (
    "orisel.models",
    "orisel.data",
    "orisel.science",
    "orisel.report",
    "orisel.analyses",
)
PLATFORM = ("orisel.runtime", "orisel.store", "orisel.control", "orisel.security", "orisel.rpc")


def _matches(module: str, pattern: str) -> bool:
    if pattern == "orisel":  # the package itself, not everything in it
        return module == pattern
    if "*" in pattern:
        return fnmatchcase(module, pattern) or fnmatchcase(module, pattern + ".*")
    return module == pattern or module.startswith(pattern + ".")


def place(module: str) -> tuple[int, int]:
    """(layer, group) of a module: the most specific pattern wins (a servicer is a service
    even though its package is an analysis; the pipeline's own servicer is the pipeline's),
    an exact name over a wildcard of as many parts."""
    best: tuple[int, int, int] | None = None
    for i, groups in enumerate(LAYERS):
        for j, patterns in enumerate(groups):
            for pattern in patterns:
                if _matches(module, pattern):
                    specificity = 2 * pattern.count(".") + ("*" not in pattern)
                    if best is None or specificity > best[2]:
                        best = (i, j, specificity)
    if best is None:
        raise ValueError(f"{module} is in no layer: add it to tests/layers.py")
    return best[0], best[1]


def _imports(tree: ast.AST, module: str, package: Path) -> list[tuple[int, str]]:
    """(line, module) of every orisel module imported: `from orisel.report import plots`
    imports orisel.report.plots, `from orisel.control.job import Job` orisel.control.job."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            for alias in node.names:
                sub = f"{name}.{alias.name}"
                out.append((node.lineno, sub if _exists(sub, package) else name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found = next(
                    (
                        ".".join(parts[:k])
                        for k in range(len(parts), 0, -1)
                        if _exists(".".join(parts[:k]), package)
                    ),
                    alias.name,
                )
                out.append((node.lineno, found))
    return [(line, m) for line, m in out if m == "orisel" or m.startswith("orisel.")]


def _module_of(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(package: Path) -> list[str]:
    """Every import in `package` (the orisel source folder) that breaks the contract."""
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        module = _module_of(path, package)
        if module.startswith("orisel.api"):
            continue  # generated by protos/generate.py
        here = place(module)
        for line, target in _imports(ast.parse(path.read_text()), module, package):
            there = place(target)
            upward = there[0] > here[0]
            sideways = there[0] == here[0] and there[1] != here[1]
            platform = any(_matches(module, p) for p in NUMERICAL) and any(
                _matches(target, p) for p in PLATFORM
            )
            problem = f"{path}:{line}: {module} imports {target}"
            if (upward or sideways or platform) and problem not in {
                f.rsplit(" (", 1)[0] for f in found
            }:
                kind = "up" if upward else "sideways" if sideways else "platform"
                found.append(f"{problem} ({kind})")
    return found


def _exists(module: str, package: Path) -> bool:
    rel = Path(*module.split(".")[1:]) if "." in module else Path()
    base = package / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("services/orisel")
    problems = violations(root)
    sys.stdout.writelines(f"{p}\n" for p in problems)
    if problems:
        sys.exit(f"{len(problems)} imports break the layers (tests/layers.py)")
    sys.stdout.write(f"layers: every import of {root} points downward\n")

"""Every third-party package orisel imports is declared in pyproject.toml: the code never
works only because a tool happened to install it beside."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imported_modules(root: Path) -> dict[str, Path]:
    """Top-level names every module under `root` imports (absolute imports only)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def undeclared(modules: dict[str, Path], declared: set[str]) -> dict[str, Path]:
    """Imported third-party modules that no declared distribution provides."""
    providers = packages_distributions()
    return {
        m: p
        for m, p in modules.items()
        if m not in sys.stdlib_module_names
        and m != "orisel"
        and not {_name(d) for d in providers.get(m, [m])} & declared
    }


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    assert undeclared(imported_modules(ROOT / "services" / "orisel"), declared) == {}


def test_an_undeclared_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("import numpy\nimport yaml\nfrom os import path\n")
    assert set(undeclared(imported_modules(tmp_path), {"numpy"})) == {"yaml"}

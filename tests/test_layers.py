"""The import contract (tests/layers.py) holds for orisel, and catches what it must."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.layers import place, violations

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_of_orisel_points_downward() -> None:
    assert violations(ROOT / "services" / "orisel") == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "orisel"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(package).parents:
            (package / parent / "__init__.py").touch()
        path.write_text(text)
    return package


def test_a_wrong_import_breaks_the_contract(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "store/backend.py": "from orisel.science.indices import gosi\n",  # up
            "science/indices.py": "from orisel.kernel import errors\n",  # down: fine
            "science/stimuli.py": "from orisel.store.backend import put_bytes\n",  # platform
            "report/rows.py": "from orisel.control import db\n",  # platform
            "kernel/errors.py": "",
            "control/db.py": "from orisel.store import backend\n",  # down: fine
            "scoring/tune.py": "from orisel.ablation import sweep\n",  # sideways
            "ablation/sweep.py": "import orisel.store.backend\n",
            "ablation/tasks.py": "from orisel.report.plots import bars\n",  # down: fine
            "report/plots.py": "from .. import library\n",  # up, relative
            "library.py": "from orisel.scoring.tune import tune\n",
        },
    )
    found = violations(package)
    assert [line.split(": ", 1)[1] for line in found] == [
        "orisel.report.plots imports orisel.library (up)",
        "orisel.report.rows imports orisel.control.db (platform)",
        "orisel.science.stimuli imports orisel.store.backend (platform)",
        "orisel.scoring.tune imports orisel.ablation.sweep (sideways)",
        "orisel.store.backend imports orisel.science.indices (up)",
    ]
    # make lint runs the same check as a script, and fails.
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "layers.py"), str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "5 imports break the layers" in done.stderr


def test_modules_are_placed_by_their_most_specific_pattern() -> None:
    assert place("orisel.scoring.tune") == (9, 0)
    assert place("orisel.ablation.sweep") == (9, 1)
    assert place("orisel.scoring.servicer")[0] == place("orisel.ablation.tasks")[0] == 12
    assert place("orisel.pipeline.tasks")[0] == 13  # the pipeline's own tasks are the pipeline
    assert place("orisel.control.db")[0] < place("orisel.security.auth")[0]
    assert place("orisel.report.plots")[0] < place("orisel.analyses")[0]
    with pytest.raises(ValueError, match="no layer"):
        place("orisel.somewhere_new")


def test_every_module_says_what_it_holds_and_a_long_one_why() -> None:
    """Each module and package opens with a docstring; one over 400 lines says why in it
    (split it otherwise)."""
    import ast

    silent, long_and_silent = [], []
    for path in sorted((ROOT / "services" / "orisel").rglob("*.py")):
        if "api" in path.relative_to(ROOT / "services" / "orisel").parts[:1]:
            continue  # generated
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not doc.strip():
            silent.append(str(path.relative_to(ROOT)))
        if text.count("\n") > 400 and "Longer than 400 lines" not in doc:
            long_and_silent.append(str(path.relative_to(ROOT)))
    assert silent == []
    assert long_and_silent == []


def test_the_command_line_and_its_remote_client_load_no_database_code() -> None:
    """`orisel submit`, `watch`, `fetch` ... run on a laptop: the job database's code (and
    torch) stay with the services and workers."""
    code = (
        "import sys\n"
        "import orisel.client.cli, orisel.client.remote, orisel.client.jobs\n"
        "import orisel.client.channel, orisel.client.artifacts, orisel.rpc.protospec\n"
        "from orisel.client.remote import _submit_request\n"
        "heavy = ('sqlalchemy', 'alembic', 'psycopg', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

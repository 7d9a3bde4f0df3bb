from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orisel.kernel.atomic import (
    OUTPUT_MARKER,
    atomic_dir,
    atomic_path,
    atomic_write_json,
    check_output,
    write_output_file,
    written,
)
from orisel.kernel.errors import FailedPrecondition


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_json(target, {"v": 1})

    def interrupted_write() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        interrupted_write()
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != OUTPUT_MARKER
    }


def _output(target: Path, files: dict[str, str]) -> None:
    with atomic_dir(target) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)


def test_force_replaces_only_what_orisel_wrote_and_keeps_everything_else(tmp_path: Path) -> None:
    out = tmp_path / "an"
    _output(out, {"units.csv": "v1", "plots/a.png": "a1", "old.json": "gone next time"})
    # Written into the output later by the user and by a training run.
    (out / "mynote.txt").write_text("my note")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "ckpt.pt").write_text("weights")
    (out / "best.pt").write_text("best")
    with pytest.raises(FailedPrecondition, match="--force"):
        check_output(out)
    check_output(out, force=True)
    _output(out, {"units.csv": "v2", "plots/b.png": "b2"})
    assert _tree(out) == {
        "best.pt": b"best",
        "checkpoints/ckpt.pt": b"weights",
        "mynote.txt": b"my note",
        "plots/b.png": b"b2",
        "units.csv": b"v2",
    }
    assert written(out) == frozenset({"units.csv", "plots/b.png"})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_users_file_in_the_way_refuses_the_write_before_anything_moves(tmp_path: Path) -> None:
    out = tmp_path / "an"
    _output(out, {"units.csv": "v1"})
    (out / "summary.json").write_text("the user's own summary")
    before = _tree(out)
    with pytest.raises(FailedPrecondition, match=r"summary\.json, written by someone else"):
        _output(out, {"units.csv": "v2", "summary.json": "{}"})
    assert _tree(out) == before
    # A marker from before orisel listed its files: nothing in the folder is taken as its own.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / OUTPUT_MARKER).write_text("written by orisel; replaced only when asked (--force)\n")
    (legacy / "units.csv").write_text("old table")
    (legacy / "mynote.txt").write_text("keep")
    with pytest.raises(FailedPrecondition, match="older orisel"):
        _output(legacy, {"units.csv": "new"})
    _output(legacy, {"other.csv": "new"})
    assert _tree(legacy) == {"mynote.txt": b"keep", "other.csv": b"new", "units.csv": b"old table"}


def test_a_report_file_replaces_only_an_earlier_report_and_only_when_asked(
    tmp_path: Path,
) -> None:
    def write(text: str) -> Callable[[Path], None]:
        def to(path: Path) -> None:
            path.write_text(text)

        return to

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(FailedPrecondition, match="did not write"):
        write_output_file(notes, write("report"), force=True)
    assert notes.read_text() == "my notes"
    table = tmp_path / "tune"
    _output(table, {"units.csv": "a table"})
    with pytest.raises(FailedPrecondition, match="did not write it as this kind"):
        write_output_file(table / "units.csv", write("report"), force=True)
    assert (table / "units.csv").read_text() == "a table"
    report = tmp_path / "report.md"
    write_output_file(report, write("r1"), force=False)
    with pytest.raises(FailedPrecondition, match="--force"):
        write_output_file(report, write("r2"), force=False)
    write_output_file(report, write("r2"), force=True)
    assert report.read_text() == "r2"
    assert notes.read_text() == "my notes"
    # The folder's record now lists the report, so a whole output written there later
    # (with --force) keeps the user's notes.
    assert written(tmp_path) == frozenset({"report.md"})

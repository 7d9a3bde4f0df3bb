"""Outputs never destroy: every refused --out is left byte-identical, inputs can never be
overwritten, an earlier orisel output is replaced only with --force, and an interrupted
command (SIGTERM) leaves no temporary folder behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orisel.client.cli import main
from orisel.kernel.atomic import OUTPUT_MARKER, atomic_dir, check_output
from orisel.kernel.errors import FailedPrecondition


def _digest(path: Path) -> str:
    """Everything under `path` (names and bytes), to prove it was left untouched."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _tune(ckpt: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "tune",
            "--checkpoint",
            str(ckpt),
            "--out",
            str(out),
            "--stimuli",
            "gratings",
            "--layers",
            "layer1",
            "--permutations",
            "2",
            "-q",
            *extra,
        ]
    )


def test_refused_outputs_are_left_byte_identical(
    untrained_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ideas.txt").write_text("my unpublished ideas\n")
    regular = tmp_path / "file.txt"
    regular.write_text("a user's file\n")
    run = untrained_checkpoint.parent
    for target in (notes, regular, run):
        before = _digest(target)
        assert _tune(untrained_checkpoint, target) == 4
        assert _digest(target) == before
        assert "--out" in capsys.readouterr().err
    # Even with --force: a run folder is not an orisel output, and it holds the input.
    before = _digest(run)
    assert _tune(untrained_checkpoint, run, "--force") == 4
    assert _digest(run) == before


def test_an_orisel_output_is_replaced_only_with_force(
    untrained_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tune"
    assert _tune(untrained_checkpoint, out) == 0
    assert (out / OUTPUT_MARKER).is_file()
    before = _digest(out)
    assert _tune(untrained_checkpoint, out) == 4  # exists: refused without --force
    assert _digest(out) == before
    assert _tune(untrained_checkpoint, out, "--force") == 0
    assert (out / "units.csv").is_file()


def test_an_analysis_never_overwrites_its_inputs(
    untrained_checkpoint: Path, tmp_path: Path
) -> None:
    scores = tmp_path / "tune"
    assert _tune(untrained_checkpoint, scores) == 0
    before = _digest(scores)
    rc = main(
        [
            "ablate",
            "--checkpoint",
            str(untrained_checkpoint),
            "--scores",
            str(scores),
            "--out",
            str(scores),
            "--force",
            "-q",
        ]
    )
    assert rc == 4
    assert _digest(scores) == before
    with pytest.raises(FailedPrecondition, match="holds the input"):
        check_output(tmp_path, [scores / "units.csv"], force=True)


def test_the_library_never_replaces_foreign_content(tmp_path: Path) -> None:
    foreign = tmp_path / "x"
    foreign.mkdir()
    (foreign / "keep").write_text("keep")
    with pytest.raises(FailedPrecondition, match="did not write"), atomic_dir(foreign):
        pass
    assert (foreign / "keep").read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_dir(empty) as tmp:
        (tmp / "a").write_text("a")
    assert (empty / "a").is_file()


def test_report_writes_over_nothing_but_an_earlier_report_and_only_with_force(
    untrained_checkpoint: Path, tmp_path: Path
) -> None:
    an = tmp_path / "an"
    assert _tune(untrained_checkpoint, an / "tune") == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for target in (an / "tune" / "units.csv", notes):
        before = _digest(target)
        for extra in ((), ("--force",)):
            assert main(["report", "--run", str(an), "--out", str(target), "-q", *extra]) == 4
            assert _digest(target) == before
    assert main(["report", "--run", str(an), "-q"]) == 0
    report = an / "report.md"
    first = report.read_text()
    assert main(["report", "--run", str(an), "-q"]) == 4  # exists: asks for --force
    assert main(["report", "--run", str(an), "-q", "--force"]) == 0
    assert report.read_text() == first


def test_train_refuses_a_file_or_a_foreign_folder_before_reading_any_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no-such-archive.tar.gz")  # would be exit 3, were it read
    regular = tmp_path / "file.pt"
    regular.write_text("a user's file")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("notes")
    for target in (regular, foreign):
        before = _digest(target)
        for extra in ((), ("--resume",)):
            assert main(["train", "--out", str(target), "--data", missing, "-q", *extra]) == 4
            assert "left untouched" in capsys.readouterr().err
            assert _digest(target) == before


def test_up_home_must_be_new_empty_or_an_earlier_homes(tmp_path: Path) -> None:
    from orisel.server.embedded import check_home

    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(FailedPrecondition, match="not an `orisel up` home"):
        check_home(foreign)
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(FailedPrecondition, match="is a file"):
        check_home(regular)
    home = tmp_path / "home"
    check_home(home)  # new: made and marked
    (home / "jobs.sqlite").write_text("")
    check_home(home)  # an earlier home


@pytest.mark.integration
def test_sigterm_leaves_no_temporary_folder(untrained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "outs" / "tune"
    cmd = [
        sys.executable,
        "-m",
        "orisel",
        "tune",
        "--checkpoint",
        str(untrained_checkpoint),
        "--out",
        str(out),
        "--permutations",
        "20000",
        "-q",
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(".tune.*.tmp")):
        assert proc.poll() is None, "finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 130
    assert list(out.parent.iterdir()) == []  # no temporary folder, no half output

"""Write-then-rename, so a killed process never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orisel.kernel.errors import FailedPrecondition


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(target) as tmp:
        write(tmp)


def atomic_write_json(target: Path, obj: Any) -> None:
    def write(path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

    atomic_write(target, write)


# In every folder orisel writes into: the files it wrote there, as JSON {"files": [...]} for a
# whole output folder's and {"single": [...]} for single files (a report) written beside
# other things. --force replaces only those; whatever else is in the folder stays as it is.
OUTPUT_MARKER = ".orisel-output"
LEGACY = "an older orisel, which kept no list of the files it wrote"


def _manifest(folder: Path) -> dict[str, frozenset[str]] | None:
    marker = folder / OUTPUT_MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
        return {k: frozenset(str(f) for f in record.get(k, ())) for k in ("files", "single")}
    except (ValueError, TypeError, AttributeError):
        return {"files": frozenset(), "single": frozenset()}  # a marker from before the list


def written(folder: Path) -> frozenset[str] | None:
    """The files orisel recorded writing in `folder` (relative paths); None when it recorded
    nothing there."""
    record = _manifest(folder)
    return None if record is None else record["files"] | record["single"]


def _record(
    folder: Path, files: set[str] | frozenset[str], single: set[str] | frozenset[str]
) -> None:
    text = json.dumps({"files": sorted(files), "single": sorted(single)}, indent=1) + "\n"

    def write(path: Path) -> None:
        path.write_text(text)

    atomic_write(folder / OUTPUT_MARKER, write)


def _files(folder: Path) -> set[str]:
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    return {f for f in found if not (folder / f).is_dir()}


def check_output(
    target: Path, inputs: Sequence[Path | None] = (), force: bool = False, field: str = "--out"
) -> None:
    """Refuse an output folder whose writing could destroy anything not orisel's own: a
    regular file, a folder with other content and no record of orisel's files, a path that is
    or contains an input, or an earlier orisel output unless `force`."""
    out = Path(target).resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given).resolve()
        if src == out or out in src.parents:
            raise FailedPrecondition(
                f"{field} {target} holds the input {given}: name another folder"
            )
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise FailedPrecondition(f"{field} {target} is a file (left untouched): name a folder")
    if not any(out.iterdir()):
        return
    if written(out) is None:
        raise FailedPrecondition(
            f"{field} {target} holds files orisel did not write (left untouched): name a new or "
            "empty folder"
        )
    if not force:
        raise FailedPrecondition(
            f"{field} {target} is an earlier orisel output: pass --force to replace the files "
            "orisel wrote there, or name a new folder"
        )


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success its files replace the files orisel
    recorded writing in `target` (the rest of `target` is left as it is). A missing or empty
    target is replaced whole; a file of someone else's in the way refuses the write before
    anything moves; interrupted (an exception, Ctrl-C, SIGTERM in the CLI), the temporary
    folder is removed."""
    check_output(target, force=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        new = _files(tmp)
        if not target.exists() or not any(target.iterdir()):
            _record(tmp, new, frozenset())
            with contextlib.suppress(FileNotFoundError):
                target.rmdir()  # empty: nothing of anyone's is lost
            os.replace(tmp, target)
            return
        _merge(tmp, target, new)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _merge(tmp: Path, target: Path, new: set[str]) -> None:
    """Move `new` (files in tmp) into `target` in place of what orisel wrote there before;
    if a move fails, what was there is put back."""
    record = _manifest(target) or {"files": frozenset(), "single": frozenset()}
    ours = record["files"] | record["single"]
    present = _files(target) - {OUTPUT_MARKER}
    folders = {d for f in present for d in _parents(f)}
    needed = new | {d for f in new for d in _parents(f)}
    theirs = sorted(((present - ours) & needed) | (folders & new))
    if theirs:
        who = LEGACY if not ours else "someone else"
        raise FailedPrecondition(
            f"{target} holds {', '.join(theirs[:5])}, written by {who}, which this output would "
            "replace (left untouched): move it, or name a new folder"
        )
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    moved: list[str] = []
    placed: list[str] = []
    try:
        for rel in sorted(ours & present):
            (old / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(target / rel, old / rel)
            moved.append(rel)
        for rel in sorted(new):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, target / rel)
            placed.append(rel)
        _record(target, new, record["single"] - new)
    except BaseException:
        for rel in placed:
            with contextlib.suppress(OSError):
                (target / rel).unlink()
        for rel in moved:
            os.replace(old / rel, target / rel)
        raise
    finally:
        shutil.rmtree(old)
    for rel in sorted(ours - new, key=lambda f: -f.count("/")):
        for parent in _parents(rel):
            with contextlib.suppress(OSError):  # still holds someone's file: kept
                (target / parent).rmdir()


def _parents(rel: str) -> list[str]:
    """The folders of a relative path, deepest first: a/b/c -> [a/b, a]."""
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def check_file_output(target: Path, force: bool, field: str = "--out") -> None:
    """Refuse a single output file that would replace anything but a single file orisel
    recorded writing there (a report; never a table of an output folder), and that only with
    `force`."""
    out = Path(target)
    if out.is_dir():
        raise FailedPrecondition(f"{field} {target} is a folder (left untouched): name a file")
    if not out.exists() and not out.is_symlink():
        return
    record = _manifest(out.resolve().parent)
    if record is None or out.name not in record["single"]:
        raise FailedPrecondition(
            f"{field} {target} exists and orisel did not write it as this kind of file (left "
            "untouched): name a new file"
        )
    if not force:
        raise FailedPrecondition(
            f"{field} {target} is an earlier orisel output: pass --force to replace it, or name "
            "a new file"
        )


def write_output_file(
    target: Path, write: Callable[[Path], None], force: bool, field: str = "--out"
) -> Path:
    """Write one output file (check_file_output's rules), recorded in its folder's list of
    what orisel wrote, so that a later --force may replace it and nothing else."""
    check_file_output(target, force, field)
    atomic_write(target, write)
    folder = target.resolve().parent
    record = _manifest(folder) or {"files": frozenset(), "single": frozenset()}
    _record(folder, record["files"], record["single"] | {target.name})
    return target

"""Which output of a network each class of an ImageFolder tree is.

A folder's classes are its sub-folder names; a network's outputs are indices. Reading the
sorted folder index as the output index is right only when the folder holds every class of
the network under names that sort into its output order (ImageNet's val/<wnid>/ and
torchvision's ImageNet weights). Anything else (a subset of ImageNet, a folder named by
class names, another class order) would score every image against the wrong output, so the
classes are matched by name or refused."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orisel.kernel.errors import DataError, InvalidArgument

# A class map: {folder class: output index}, the network's class names in output order, or
# a file holding either (JSON object, or one name per line).
ClassMap = Mapping[str, int] | Sequence[str] | str | Path

MAP_HELP = (
    'a class map: a JSON file {"<folder class>": <output index>, ...}, or a text file with '
    "the network's class names in output order, one per line (a line's first word may be "
    "the name, as in ImageNet's LOC_synset_mapping.txt)"
)


@dataclass(frozen=True)
class ClassOutputs:
    """The network output of each folder class (`outputs[k]` for sorted class k), and how
    they were matched: "class map", "class names" or "sorted folder order"."""

    outputs: np.ndarray
    matched_by: str

    def of(self, classes: Sequence[str]) -> dict[str, int]:
        return {c: int(o) for c, o in zip(classes, self.outputs, strict=True)}


def read_class_map(path: Path) -> Mapping[str, int] | tuple[str, ...]:
    """A class-map file: a JSON object of output indices (or list of names), or names one per
    line; told apart by content, since a stored copy keeps no file name."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"class map {path} does not exist; expected {MAP_HELP}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"class map {path} is not UTF-8 text ({exc}); expected {MAP_HELP}") from exc
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"class map {path} is not valid JSON ({exc}); expected {MAP_HELP}"
            ) from exc
        if isinstance(loaded, list) and all(isinstance(n, str) for n in loaded):
            return tuple(loaded)
        if not isinstance(loaded, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in loaded.values()
        ):
            raise DataError(f"class map {path} is neither an object of indices nor a list")
        return {str(k): int(v) for k, v in loaded.items()}
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise DataError(f"class map {path} is empty; expected {MAP_HELP}")
    return names


def _by_index(classes: Sequence[str], mapping: Mapping[str, int], n_outputs: int) -> np.ndarray:
    missing = [c for c in classes if c not in mapping]
    if missing:
        raise InvalidArgument(
            "class_map", f"an output index for every folder class (missing: {missing[:5]})", None
        )
    outputs = np.array([mapping[c] for c in classes], dtype=np.int64)
    bad = outputs[(outputs < 0) | (outputs >= n_outputs)]
    if bad.size:
        raise InvalidArgument(
            "class_map", f"output indices in [0, {n_outputs}) of this network", bad.tolist()
        )
    if len(set(outputs.tolist())) != len(outputs):
        raise InvalidArgument("class_map", "a different output for every class", mapping)
    return outputs


def _key(name: str) -> str:
    return name.strip().lower().replace("_", " ")


def _by_name(classes: Sequence[str], names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each folder class's output by name (case and `_`/space ignored), a whole name before a
    line's first word (its id, as in LOC_synset_mapping.txt); the classes no name matches. A
    name several outputs share (ImageNet has two "crane"s) is refused, not guessed."""
    whole: dict[str, set[int]] = {}
    first: dict[str, set[int]] = {}
    for i, name in enumerate(names):
        whole.setdefault(_key(name), set()).add(i)
        if name.split():
            first.setdefault(_key(name.split()[0]), set()).add(i)
    outputs = []
    for c in classes:
        found = whole.get(_key(c)) or first.get(_key(c)) or set()
        if len(found) > 1:
            raise InvalidArgument(
                "class_map",
                f"names that each mean one output: folder class {c!r} names outputs "
                f"{sorted(found)}; pass a JSON class map of output indices",
                c,
            )
        outputs.append(found.pop() if found else -1)
    out = np.array(outputs, dtype=np.int64)
    return out, [c for c, o in zip(classes, out, strict=True) if o < 0]


def match_classes(
    classes: Sequence[str],
    n_outputs: int,
    class_map: Mapping[str, int] | Sequence[str] | None = None,
    network_names: Sequence[str] | None = None,
) -> ClassOutputs:
    """The output of each folder class: from `class_map` (indices, or the network's names in
    output order), else by the network's own class names (its weights' categories), else by
    sorted folder order when the folder holds exactly as many classes as the network has
    outputs; otherwise refused, saying what to pass."""
    if class_map is not None and not isinstance(class_map, Mapping):
        if len(class_map) != n_outputs:
            raise InvalidArgument(
                "class_map",
                f"the network's {n_outputs} class names in output order",
                f"{len(class_map)} names",
            )
        names: Sequence[str] | None = class_map
    elif class_map is not None:
        return ClassOutputs(_by_index(classes, class_map, n_outputs), "class map")
    else:
        names = network_names if network_names and len(network_names) == n_outputs else None
    if names is not None:
        outputs, unmatched = _by_name(classes, names)
        if not unmatched:
            if len(set(outputs.tolist())) != len(outputs):
                raise InvalidArgument(
                    "class_map", "names that match each folder class to a different output", None
                )
            return ClassOutputs(outputs, "class map" if class_map is not None else "class names")
        if class_map is not None or len(unmatched) < len(classes):
            raise InvalidArgument(
                "class_map",
                f"a name for every folder class among the network's {n_outputs} class names "
                f"(unmatched: {unmatched[:5]}); pass --class-map with {MAP_HELP}",
                None,
            )
    if len(classes) == n_outputs:
        return ClassOutputs(np.arange(n_outputs, dtype=np.int64), "sorted folder order")
    shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
    raise InvalidArgument(
        "class_map",
        f"given, as the image folder has {len(classes)} classes ({shown}) and the network "
        f"{n_outputs} outputs, so a folder's sorted index is not its output; pass --class-map "
        f"(class_map= in Python): {MAP_HELP}",
        None,
    )

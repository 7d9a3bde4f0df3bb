"""Activations as artifacts: a network's responses to the tuning stimuli and to labelled test
images, computed once (the forward passes: a GPU's work) and scored as often as wanted (the
permutation statistics: a CPU's work).

A set of activations is named by the sha256 of what determines its numbers (`determinants`:
the network's checksum, its preprocessing, the stimulus grids, the layers, the reduction,
the test images and the extraction's code version), so the same extraction asked for twice
is found, not recomputed, and its files are written once.

<out>/responses.npz   float32 (stimuli, units) per "<stimulus>/<layer>"; with test images,
                      float32 (images, units) per "images/<layer>" and int64 "labels"
<out>/summary.json    key, determinants, responses_sha256, network, stimulus grids, shapes
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orisel.extraction.extract import make_stimuli
from orisel.extraction.network import Network
from orisel.extraction.provenance import network_record
from orisel.extraction.spec import ExtractSpec
from orisel.kernel.atomic import atomic_dir
from orisel.kernel.errors import DataError, FailedPrecondition
from orisel.kernel.names import Reduction
from orisel.kernel.provenance import environment, sha256_file

# Raised whenever a change to how responses are computed changes their numbers, so stored
# activations of the old code are never read as the new code's.
EXTRACTION_VERSION = 1
STORE_PREFIX = "activations"
# Whose they are when no one signed in (a deployment without authentication).
NO_OWNER = "anonymous"
# Class selectivity reads each unit's mean over its feature map, whatever the tuning's
# reduction: the image responses are always reduced so.
IMAGE_REDUCTION: Reduction = "mean"
# The network's own record fields that say which weights ran, beside its checksum.
IDENTITY = ("checkpoint_sha256", "weights_sha256", "model", "output", "functional")
# Spec fields that change the stored numbers; the rest (batch size, rectify, the scoring
# settings of a TuneSpec) do not.
GRID = ("n_orientations", "n_phases", "n_frequencies", "grating_centre")


@dataclass(frozen=True)
class Activations:
    """One network's responses, as scored: per stimulus set and layer (stimuli, units), and
    per layer on the test images (images, units) with their labels."""

    key: str
    determinants: dict[str, Any]
    layers: tuple[str, ...]
    stimuli: dict[str, dict[str, np.ndarray]]
    images: dict[str, np.ndarray] | None
    labels: np.ndarray | None
    n_classes: int
    network: dict[str, Any]
    environment: dict[str, Any]  # where the forward passes ran

    @property
    def image_size(self) -> int:
        return int(self.determinants["preprocessing"]["image_size"])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"{k}/{n}": r for k, by in self.stimuli.items() for n, r in by.items()}
        if self.images is not None and self.labels is not None:
            out |= {f"images/{n}": r for n, r in self.images.items()} | {"labels": self.labels}
        return out

    def settings(self) -> dict[str, Any]:
        """The spec fields they were extracted with: a scoring spec's defaults for them."""
        d = self.determinants
        return {**d["grid"]} | {
            "reduction": d["reduction"],
            "tokens": d["tokens"],
            "stimuli": tuple(self.stimuli),
        }

    def check(self, spec: ExtractSpec) -> tuple[str, ...]:
        """The layers `spec` scores, refused where these activations are not what it would
        have measured (another grid, reduction or token reading; a layer or stimulus set
        they lack): scoring them would give another analysis's numbers under this spec."""
        d = self.determinants
        had = d["grid"] | {"reduction": d["reduction"], "tokens": d["tokens"]}
        for name, value in had.items():
            if getattr(spec, name) != value:
                raise FailedPrecondition(
                    f"the activations {self.key[:12]} were extracted with {name}={value!r}, "
                    f"not {getattr(spec, name)!r}: extract again with the scoring's settings "
                    "or score with theirs"
                )
        missing: list[str] = [k for k in spec.stimuli if k not in self.stimuli]
        layers = spec.layers or self.layers
        missing += [n for n in layers if n not in self.layers]
        if missing:
            raise FailedPrecondition(
                f"the activations {self.key[:12]} hold no {', '.join(missing)} (they hold "
                f"{', '.join([*self.stimuli, *self.layers])})"
            )
        return tuple(layers)


def store_prefix(owner: str, key: str) -> str:
    """Where the store keeps an owner's activations of `key`: per owner, as a network's
    responses say what only the network's owner may know (security.access)."""
    return f"{STORE_PREFIX}/{owner or NO_OWNER}/{key}"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def images_sha256(images: np.ndarray, labels: np.ndarray, n_classes: int) -> str:
    """The test images by content (pixels, labels and class count), so the same images give
    the same key whichever file or subset they were read from."""
    h = hashlib.sha256(f"{images.shape}|{images.dtype}|{n_classes}|".encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def determinants(
    net: Network,
    spec: ExtractSpec,
    layers: tuple[str, ...],
    images: str | None,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Everything the responses' numbers depend on, and nothing else (`record`: the
    network's, `network_record`)."""
    return {
        "version": EXTRACTION_VERSION,
        "network": {k: record[k] for k in IDENTITY if record.get(k) is not None},
        "preprocessing": {
            "image_size": net.info.image_size,
            "channels": net.info.channels,
            "mean_image_sha256": None
            if net.mean_image is None
            else hashlib.sha256(np.ascontiguousarray(net.mean_image).tobytes()).hexdigest(),
            "mean": net.info.mean,
            "std": net.info.std,
        },
        "stimuli": list(spec.stimuli),
        "grid": {k: getattr(spec, k) for k in GRID},
        "layers": list(layers),
        "reduction": spec.reduction,
        "tokens": spec.tokens,
        "images": images,
        "image_reduction": IMAGE_REDUCTION if images else None,
    }


def measure(
    net: Network,
    spec: ExtractSpec,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    n_classes: int = 10,
) -> Activations:
    """Every forward pass an analysis of `net` needs: the stimulus sets' responses and, given
    labelled images, theirs."""
    layers = tuple(spec.layers or net.default_layers())
    by_image, seen = None, None
    if images is not None and labels is not None:
        got = net.image_responses(images, layers, IMAGE_REDUCTION, spec.batch_size, spec.tokens)
        by_image = {n: r.astype(np.float32, copy=False) for n, r in got.items()}
        labels = np.asarray(labels, dtype=np.int64)
        seen = images_sha256(images, labels, n_classes)
    by_stimulus: dict[str, dict[str, np.ndarray]] = {}
    for kind in spec.stimuli:
        stim = make_stimuli(kind, net.info.image_size, spec)
        got = net.stimulus_responses(
            stim, layers, spec.reduction, spec.batch_size, tokens=spec.tokens
        )
        by_stimulus[kind] = {n: r.astype(np.float32, copy=False) for n, r in got.items()}
    # Its weights' checksum (a pass over every parameter for a network orisel did not train)
    # is taken once.
    record = network_record(net)
    d = determinants(net, spec, layers, seen, record)
    return Activations(
        _digest(d),
        d,
        layers,
        by_stimulus,
        by_image,
        labels if seen else None,
        n_classes,
        record,
        environment(net.device),
    )


def write(acts: Activations, out: Path, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """`out`/responses.npz and summary.json, committed whole; returns the summary."""
    with atomic_dir(out) as tmp:
        np.savez(tmp / "responses.npz", **acts.arrays())  # type: ignore[arg-type]
        summary = {
            "key": acts.key,
            "determinants": acts.determinants,
            "responses_sha256": sha256_file(tmp / "responses.npz"),
            "network": acts.network,
            "layers": list(acts.layers),
            "stimuli": {
                k: make_stimuli(k, acts.image_size, _grid_spec(acts)).describe()
                for k in acts.stimuli
            },
            "n_classes": acts.n_classes if acts.labels is not None else None,
            "arrays": {k: list(v.shape) for k, v in acts.arrays().items()},
            "environment": acts.environment,
            **(provenance or {}),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def extract(
    net: Network,
    spec: ExtractSpec,
    out: Path,
    provenance: dict[str, Any] | None = None,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    n_classes: int = 10,
) -> dict[str, Any]:
    """`orisel extract`: measure the activations and write them to `out` (atomically)."""
    t0 = time.perf_counter()
    acts = measure(net, spec, images, labels, n_classes)
    wall = {"wall_s": round(time.perf_counter() - t0, 2)}
    return write(acts, out, wall | (provenance or {}))


def kept(net: Network, spec: ExtractSpec, root: Path) -> Activations:
    """`net`'s stimulus activations kept on disk under `root`/<key> (`orisel trajectory
    --activations`): read where an earlier run wrote them, else measured and written, so
    re-scoring a run's checkpoints with other statistics runs no forward pass."""
    layers = tuple(spec.layers or net.default_layers())
    key = _digest(determinants(net, spec, layers, None, network_record(net)))
    if (root / key / "summary.json").is_file():
        return read(root / key)
    acts = measure(net, spec)
    write(acts, root / acts.key)
    return acts


def read(folder: Path) -> Activations:
    """Activations written by `write` (a folder with responses.npz and summary.json, or the
    summary.json itself), refused if the array file is not the one the summary names or the
    summary's key is not that of its determinants."""
    folder = folder.parent if folder.name == "summary.json" else folder
    try:
        summary = json.loads((folder / "summary.json").read_text())
        key, d = summary["key"], summary["determinants"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{folder} holds no activations summary.json ({exc})") from exc
    if _digest(d) != key:
        raise DataError(f"{folder}/summary.json: its key {key[:12]} is not its determinants'")
    if d.get("version") != EXTRACTION_VERSION:
        raise FailedPrecondition(
            f"{folder}: activations of extraction version {d.get('version')}, this code reads "
            f"version {EXTRACTION_VERSION}: extract them again"
        )
    npz = folder / "responses.npz"
    if sha256_file(npz) != summary["responses_sha256"]:
        raise DataError(f"{npz} is not the file its summary.json names (sha256 differs)")
    layers = tuple(summary["layers"])
    with np.load(npz) as f:
        stimuli = {k: {n: f[f"{k}/{n}"] for n in layers} for k in d["stimuli"]}
        images = {n: f[f"images/{n}"] for n in layers} if d["images"] else None
        labels = f["labels"] if d["images"] else None
    return Activations(
        key,
        d,
        layers,
        stimuli,
        images,
        labels,
        int(summary["n_classes"] or 10),
        summary["network"],
        summary["environment"],
    )


def _grid_spec(acts: Activations) -> ExtractSpec:
    return ExtractSpec.model_validate(
        {**acts.determinants["grid"], "stimuli": tuple(acts.stimuli), "layers": acts.layers}
    )

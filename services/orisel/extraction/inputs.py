"""A job's network and labelled images, as every entry point loads them: the command line
from local paths, a worker from the references its service resolved at Submit (fetched into
the worker's content-addressed cache, so no request field names a path)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orisel.core.artifacts import fetch
from orisel.core.storage import ArtifactRef, ArtifactStore
from orisel.extraction.network import Network, load_network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labelled:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    n_classes: int
    sha256: str  # of the data set, for orisel checkpoints; "" for an image folder


def labelled_images(
    net: Network, source: Path, subset: int | None = None, cache_dir: Path | None = None
) -> Labelled:
    """Test images for `net`: CIFAR-10's test split for a network orisel trained, an
    ImageFolder tree at the network's input size for any other; `subset`: a class-stratified
    sample of them (`data.prepare.pick_test_images`)."""
    from orisel.data.prepare import pick_test_images
    from orisel.data.sources import load_cifar10

    if net.mean_image is None:
        from orisel.data.imagenet import imagefolder_eval

        images, labels, classes = imagefolder_eval(source, net.info.image_size, subset)
        return Labelled(images, labels, len(classes), "")
    ds = load_cifar10(source, cache_dir)
    expected = net.source.get("data_sha256")
    if expected and expected != ds.sha256:
        log.warning(
            "the checkpoint was trained on data %s, this is %s", str(expected)[:12], ds.sha256[:12]
        )
    keep = pick_test_images(ds.test_labels, subset)
    return Labelled(ds.test_images[keep], ds.test_labels[keep], len(ds.classes), ds.sha256)


def job_network(spec: Mapping[str, Any], store: ArtifactStore, cache: Path) -> Network:
    """The network a job's spec names: an orisel checkpoint, a torchvision architecture (with
    stored weights or random ones) or a torch.export program."""
    if spec.get("checkpoint"):
        return load_network(fetch(store, ArtifactRef(**spec["checkpoint"]), cache), device="auto")
    model = spec["model"]
    if model.get("program"):
        from orisel.models.registry import exported_model

        ref = ArtifactRef(**model["program"])
        module, exported_size = exported_model(fetch(store, ref, cache), model.get("input_size"))
        size = model.get("input_size") or exported_size or 224
        return Network.from_module(module, size, name=ref.key, device="auto")
    weights = fetch(store, ArtifactRef(**model["weights"]), cache) if model.get("weights") else None
    return load_network(
        None,
        model["architecture"],
        str(weights) if weights is not None else None,
        "auto",
        False,
        model.get("input_size"),
    )


def job_images(
    spec: Mapping[str, Any],
    net: Network,
    store: ArtifactStore,
    cache: Path,
    fallback: Path | None,
    cache_dir: Path | None = None,
) -> Labelled | None:
    """The labelled images a job's spec names, else the worker's configured data set."""
    source = fetch(store, ArtifactRef(**spec["data"]), cache) if spec.get("data") else fallback
    if source is None:
        return None
    return labelled_images(net, source, spec.get("test_subset"), cache_dir)

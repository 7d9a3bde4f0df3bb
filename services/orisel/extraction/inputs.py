"""A job's network and labelled images, as every entry point loads them: the command line
from local paths, a worker from the references its service resolved at Submit (fetched into
the worker's content-addressed cache, so no request field names a path)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orisel.data.classes import ClassMap, match_classes, read_class_map
from orisel.extraction.network import Network, load_network
from orisel.extraction.spec import Inputs
from orisel.kernel.errors import FailedPrecondition
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import fetch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labelled:
    """Labelled images: `labels` index the data set's classes (class selectivity compares
    them), `targets` the network's outputs (accuracy and loss score them); the two differ
    for an image folder whose classes are some of the network's, or in another order."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64, in [0, n_classes)
    n_classes: int
    sha256: str  # of the data set, for orisel checkpoints; "" for an image folder
    targets: np.ndarray  # (N,) int64, the network output of each image's class
    class_outputs: dict[str, int] | None = None  # an image folder's class -> network output
    matched_by: str | None = None  # how they were matched (data.classes.ClassOutputs)


def output_count(net: Network) -> int:
    """How many outputs (classes) the network has, from one probe pass."""
    with torch.no_grad():
        out = net.model(net.probe(2))
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FailedPrecondition(
            f"the network's output is {shape}, not (batch, classes) logits: accuracy and "
            "ablation damage need one score per class"
        )
    return int(out.shape[1])


def weights_categories(net: Network) -> tuple[str, ...] | None:
    """The class names of a torchvision model's pretrained weights (meta["categories"]);
    None for any other network."""
    name, weights = net.source.get("model"), net.source.get("weights")
    if not isinstance(name, str) or not isinstance(weights, str) or Path(weights).suffix:
        return None
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(name)
        entry = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except (KeyError, ValueError):
        return None
    categories = entry.meta.get("categories")
    return tuple(categories) if categories else None


def labelled_images(
    net: Network,
    source: Path,
    subset: int | None = None,
    cache_dir: Path | None = None,
    class_map: ClassMap | None = None,
) -> Labelled:
    """Test images for `net`: CIFAR-10's test split for a network orisel trained, an
    ImageFolder tree at the network's input size for any other, its classes matched to the
    network's outputs (`data.classes.match_classes`: by `class_map`, a file or its contents,
    else by the weights' class names, else by sorted order when the counts agree; refused
    otherwise); `subset`: a class-stratified sample (`data.prepare.pick_test_images`)."""
    from orisel.data.prepare import pick_test_images
    from orisel.data.sources import load_cifar10

    if net.mean_image is None:
        from orisel.data.imagenet import imagefolder_eval

        mapping = (
            read_class_map(Path(class_map)) if isinstance(class_map, str | Path) else class_map
        )
        n_outputs = output_count(net)
        images, labels, classes = imagefolder_eval(source, net.info.image_size, subset)
        matched = match_classes(classes, n_outputs, mapping, weights_categories(net))
        return Labelled(
            images,
            labels,
            len(classes),
            "",
            matched.outputs[labels],
            matched.of(classes),
            matched.matched_by,
        )
    ds = load_cifar10(source, cache_dir)
    expected = net.source.get("data_sha256")
    if expected and expected != ds.sha256:
        log.warning(
            "the checkpoint was trained on data %s, this is %s", str(expected)[:12], ds.sha256[:12]
        )
    keep = pick_test_images(ds.test_labels, subset)
    labels = ds.test_labels[keep]
    return Labelled(ds.test_images[keep], labels, len(ds.classes), ds.sha256, labels)


def job_network(spec: Inputs, store: ArtifactStore, cache: Path) -> Network:
    """The network a job's spec names: an orisel checkpoint, a torchvision architecture (with
    stored weights or random ones) or a torch.export program."""
    if spec.checkpoint is not None:
        return load_network(fetch(store, spec.checkpoint, cache), device="auto")
    model = spec.model
    if model is None:
        raise FailedPrecondition("the job names no network")
    if model.program is not None:
        from orisel.models.registry import exported_model

        ref = model.program
        module, exported_size = exported_model(fetch(store, ref, cache), model.input_size)
        size = model.input_size or exported_size or 224
        return Network.from_module(module, size, name=ref.key, device="auto")
    weights = fetch(store, model.weights, cache) if model.weights is not None else None
    return load_network(
        None,
        model.architecture,
        str(weights) if weights is not None else None,
        "auto",
        False,
        model.input_size,
    )


def job_images(
    spec: Inputs,
    net: Network,
    store: ArtifactStore,
    cache: Path,
    fallback: Path | None,
    cache_dir: Path | None = None,
) -> Labelled | None:
    """The labelled images a job's spec names, else the worker's configured data set."""
    source = fetch(store, spec.data, cache) if spec.data is not None else fallback
    if source is None:
        return None
    class_map = fetch(store, spec.class_map, cache) if spec.class_map is not None else None
    return labelled_images(net, source, spec.test_subset, cache_dir, class_map)

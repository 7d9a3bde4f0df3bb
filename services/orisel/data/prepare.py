"""The paper's preprocessing: stratified train/validation split, mean image, label corruption.

Pure numpy: every function is a deterministic function of its inputs and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from orisel.data.sources import ImageDataset
from orisel.kernel.errors import InvalidArgument

MAX_IMAGES = 100_000_000  # more than any image data set a worker could hold


class SplitSpec(BaseModel):
    """How the training archive is turned into train/validation sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    val_size: int = Field(
        10_000, ge=1, le=MAX_IMAGES, description="validation images held out (stratified)"
    )
    split_seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of the train/validation split")
    train_subset: int | None = Field(
        None,
        ge=1,
        le=MAX_IMAGES,
        description="use a stratified subset of this many training images",
    )
    test_subset: int | None = Field(
        None,
        ge=1,
        le=MAX_IMAGES,
        description="evaluate on a stratified subset of this many test images",
    )
    label_corruption: float = Field(
        0.0, ge=0.0, le=1.0, description="fraction of training labels replaced by random labels"
    )
    corruption_seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of the label corruption")


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to `counts` (largest-remainder rounding)."""
    exact = counts * (total / counts.sum())
    quota = np.floor(exact).astype(np.int64)
    short = total - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    out: np.ndarray = quota
    return out


def stratified_split(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick `size` indices with the class proportions of `labels`; return (rest, picked), sorted."""
    n = len(labels)
    if not 0 < size < n:
        raise InvalidArgument("size", f"between 1 and {n - 1} (the number of images - 1)", size)
    classes, counts = np.unique(labels, return_counts=True)
    quota = _quotas(counts, size)
    rng = np.random.default_rng(seed)
    picked = [
        rng.permutation(np.flatnonzero(labels == c))[:q]
        for c, q in zip(classes, quota, strict=True)
    ]
    chosen = np.sort(np.concatenate(picked))
    mask = np.ones(n, dtype=bool)
    mask[chosen] = False
    return np.flatnonzero(mask), chosen


def pick_test_images(labels: np.ndarray, size: int | None, seed: int = 0) -> np.ndarray:
    """The test images an analysis evaluates, as sorted indices: all of them, or `size` of
    them with the class proportions of `labels`. Every path that reads test images (training's
    evaluation, the analyses, ImageFolder data) picks through here, so one (labels, size,
    seed) is one subset everywhere."""
    n = len(labels)
    if size is None or size >= n:
        return np.arange(n)
    return stratified_split(labels, size, seed)[1]


def corrupt_labels(
    labels: np.ndarray, fraction: float, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Replace round(fraction * N) labels, chosen at random, by uniformly random labels.

    As in Zhang et al. 2017 and Morcos et al. 2018 a random label may equal the true one, so
    about fraction * (1 - 1/num_classes) of the labels end up wrong. Returns (labels, chosen mask).
    """
    if not 0.0 <= fraction <= 1.0:
        raise InvalidArgument("label_corruption", "a fraction in [0, 1]", fraction)
    rng = np.random.default_rng(seed)
    n_corrupt = round(fraction * len(labels))
    chosen = rng.choice(len(labels), size=n_corrupt, replace=False)
    out = labels.copy()
    out[chosen] = rng.integers(0, num_classes, size=n_corrupt)
    mask = np.zeros(len(labels), dtype=bool)
    mask[chosen] = True
    return out, mask


def mean_image(images: np.ndarray) -> np.ndarray:
    """Per-pixel mean of NHWC uint8 images, scaled to [0, 1], as CHW float32."""
    total = images.sum(axis=0, dtype=np.float64)
    mean: np.ndarray = (total / (255.0 * len(images))).transpose(2, 0, 1).astype(np.float32)
    return mean


@dataclass(frozen=True)
class PreparedData:
    """Train/validation/test images (NHWC uint8) and labels, and the train mean image (CHW)."""

    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    train_labels_clean: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: np.ndarray
    sha256: str

    def summary(self) -> dict[str, object]:
        return {
            "sha256": self.sha256,
            "train": len(self.train_labels),
            "validation": len(self.val_labels),
            "test": len(self.test_labels),
            "labels_changed_fraction": float(np.mean(self.train_labels != self.train_labels_clean)),
        }


def prepare(ds: ImageDataset, spec: SplitSpec) -> PreparedData:
    """Split, subset and corrupt as `spec` says; the mean image is the final training split's."""
    n = len(ds.train_labels)
    if spec.val_size >= n:
        raise InvalidArgument("val_size", f"less than the {n} training images", spec.val_size)
    train_idx, val_idx = stratified_split(ds.train_labels, spec.val_size, spec.split_seed)
    if spec.train_subset is not None:
        if spec.train_subset > len(train_idx):
            raise InvalidArgument(
                "train_subset", f"at most the {len(train_idx)} training images", spec.train_subset
            )
        if spec.train_subset < len(train_idx):
            _, keep = stratified_split(
                ds.train_labels[train_idx], spec.train_subset, spec.split_seed
            )
            train_idx = train_idx[keep]
    if spec.test_subset is not None and spec.test_subset > len(ds.test_labels):
        raise InvalidArgument(
            "test_subset", f"at most the {len(ds.test_labels)} test images", spec.test_subset
        )
    test_idx = pick_test_images(ds.test_labels, spec.test_subset, spec.split_seed)
    clean = ds.train_labels[train_idx]
    noisy, _ = corrupt_labels(clean, spec.label_corruption, len(ds.classes), spec.corruption_seed)
    train_images = ds.train_images[train_idx]
    return PreparedData(
        classes=ds.classes,
        train_images=train_images,
        train_labels=noisy,
        train_labels_clean=clean,
        val_images=ds.train_images[val_idx],
        val_labels=ds.train_labels[val_idx],
        test_images=ds.test_images[test_idx],
        test_labels=ds.test_labels[test_idx],
        mean=mean_image(train_images),
        sha256=ds.sha256,
    )

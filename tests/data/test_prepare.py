from __future__ import annotations

import numpy as np
import pytest

from orisel.data.prepare import SplitSpec, corrupt_labels, mean_image, prepare, stratified_split
from orisel.data.sources import ImageDataset
from orisel.kernel.errors import InvalidArgument


def _dataset(per_class: int = 50, n_test_per_class: int = 10, size: int = 4) -> ImageDataset:
    rng = np.random.default_rng(1)
    train_y = np.repeat(np.arange(10), per_class)
    test_y = np.repeat(np.arange(10), n_test_per_class)
    return ImageDataset(
        classes=tuple(str(c) for c in range(10)),
        train_images=rng.integers(0, 256, (len(train_y), size, size, 3), dtype=np.uint8),
        train_labels=train_y,
        test_images=rng.integers(0, 256, (len(test_y), size, size, 3), dtype=np.uint8),
        test_labels=test_y,
        sha256="0" * 64,
        source="synthetic",
        format="python",
    )


def test_paper_split_is_40k_10k_and_stratified() -> None:
    labels = np.repeat(np.arange(10), 5000)
    train, val = stratified_split(labels, 10_000, seed=0)
    assert len(train) == 40_000
    assert len(val) == 10_000
    assert np.bincount(labels[val]).tolist() == [1000] * 10
    assert np.bincount(labels[train]).tolist() == [4000] * 10
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).size == 50_000


def test_split_is_seeded() -> None:
    labels = np.repeat(np.arange(10), 100)
    a = stratified_split(labels, 200, seed=3)[1]
    np.testing.assert_array_equal(a, stratified_split(labels, 200, seed=3)[1])
    assert not np.array_equal(a, stratified_split(labels, 200, seed=4)[1])


def test_unbalanced_classes_keep_their_proportions() -> None:
    labels = np.concatenate([np.zeros(700, int), np.ones(200, int), np.full(100, 2)])
    _, val = stratified_split(labels, 100, seed=0)
    assert np.bincount(labels[val]).tolist() == [70, 20, 10]


def test_split_size_bounds() -> None:
    with pytest.raises(InvalidArgument, match="size: must be between 1 and 9"):
        stratified_split(np.zeros(10, int), 10, seed=0)


def test_mean_image_is_the_training_split_mean() -> None:
    ds = _dataset()
    data = prepare(ds, SplitSpec(val_size=100))
    expected = data.train_images.astype(np.float64).mean(axis=0).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(data.mean, expected, atol=1e-6)
    assert data.mean.shape == (3, 4, 4)
    assert data.mean.dtype == np.float32
    everything = mean_image(ds.train_images)
    assert not np.allclose(data.mean, everything, atol=1e-4)  # validation images left out


def test_prepare_sizes_subsets_and_balance() -> None:
    data = prepare(_dataset(), SplitSpec(val_size=100, train_subset=200, test_subset=50))
    assert len(data.train_labels) == 200
    assert len(data.val_labels) == 100
    assert np.bincount(data.train_labels).tolist() == [20] * 10
    assert np.bincount(data.val_labels).tolist() == [10] * 10
    assert np.bincount(data.test_labels).tolist() == [5] * 10


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (SplitSpec(val_size=500), "val_size"),
        (SplitSpec(val_size=100, train_subset=401), "train_subset"),
        (SplitSpec(val_size=100, test_subset=101), "test_subset"),
    ],
)
def test_impossible_sizes_name_the_field(spec: SplitSpec, field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field}: must be"):
        prepare(_dataset(), spec)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.4, 1.0])
def test_label_corruption_rate(fraction: float) -> None:
    labels = np.repeat(np.arange(10), 10_000)
    noisy, chosen = corrupt_labels(labels, fraction, 10, seed=7)
    assert chosen.sum() == round(fraction * len(labels))
    np.testing.assert_array_equal(noisy[~chosen], labels[~chosen])
    changed = np.mean(noisy != labels)
    expected = fraction * 0.9  # a random label equals the true one 1 time in 10
    sd = np.sqrt(chosen.sum() * 0.1 * 0.9) / len(labels)
    assert abs(changed - expected) < 4 * sd
    # The new labels are uniform over the classes.
    counts = np.bincount(noisy[chosen], minlength=10)
    assert counts.min() > 0.9 * chosen.sum() / 10


def test_no_corruption_is_identity_and_seeded() -> None:
    labels = np.arange(100) % 10
    same, chosen = corrupt_labels(labels, 0.0, 10, seed=1)
    np.testing.assert_array_equal(same, labels)
    assert not chosen.any()
    a, _ = corrupt_labels(labels, 0.5, 10, seed=1)
    np.testing.assert_array_equal(a, corrupt_labels(labels, 0.5, 10, seed=1)[0])


def test_corruption_fraction_outside_unit_interval() -> None:
    with pytest.raises(InvalidArgument, match=r"label_corruption: must be a fraction in \[0, 1\]"):
        corrupt_labels(np.zeros(10, int), 1.5, 10, seed=0)


def test_only_training_labels_are_corrupted() -> None:
    ds = _dataset(per_class=100)
    data = prepare(ds, SplitSpec(val_size=200, label_corruption=0.5, corruption_seed=2))
    assert 0.3 < data.summary()["labels_changed_fraction"] < 0.6  # type: ignore[operator]
    assert np.bincount(data.val_labels).tolist() == [20] * 10  # validation stays clean
    np.testing.assert_array_equal(data.test_labels, ds.test_labels)


def test_every_path_picks_the_same_test_images() -> None:
    """Training's evaluation (prepare) and the analyses (pick_test_images) take one subset
    for one (labels, size, seed): stratified by class, in index order."""
    from orisel.data.prepare import pick_test_images

    ds = _dataset()
    picked = pick_test_images(ds.test_labels, 50)
    np.testing.assert_array_equal(
        prepare(ds, SplitSpec(val_size=100, test_subset=50)).test_labels, ds.test_labels[picked]
    )
    assert (np.diff(picked) > 0).all()
    assert np.ptp(np.bincount(ds.test_labels[picked])) <= 1  # the classes' proportions
    np.testing.assert_array_equal(pick_test_images(ds.test_labels, None), np.arange(100))

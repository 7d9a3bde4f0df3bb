"""Shared fixtures: tiny CIFAR-like data sets in both layouts, built by the tests themselves."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from torch import nn

# xdist runs one test process per core; torch's own intra-op threads on top of that would
# oversubscribe the cores (the unit tier: 130 s with them, 67 s without, on 2 cores). Set
# before any test imports torch; a test's own processes inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
SHARED_CIFAR = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
)


@dataclass(frozen=True)
class Arrays:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def make_arrays(n_train_per_class: int = 30, n_test_per_class: int = 10, seed: int = 0) -> Arrays:
    """Learnable images: each class is a coloured, oriented stripe pattern plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(10), n)
        rng.shuffle(labels)
        imgs = np.empty((len(labels), 32, 32, 3), dtype=np.uint8)
        for i, c in enumerate(labels):
            theta = np.pi * c / 10
            stripes = np.sin(0.6 * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
            colour = np.array([(c * 37) % 255, (c * 91) % 255, (c * 53) % 255]) / 255.0
            img = (
                0.5 + 0.35 * stripes[..., None] * (0.5 + colour) + rng.normal(0, 0.05, (32, 32, 3))
            )
            imgs[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
        return imgs, labels.astype(np.int64)

    train_x, train_y = draw(n_train_per_class)
    test_x, test_y = draw(n_test_per_class)
    return Arrays(train_x, train_y, test_x, test_y)


def python_files(a: Arrays) -> dict[str, bytes]:
    def batch(x: np.ndarray, y: np.ndarray) -> bytes:
        data = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        return pickle.dumps({b"data": data, b"labels": y.tolist(), b"batch_label": b"x"})

    files = {
        "batches.meta": pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}),
        "test_batch": batch(a.test_x, a.test_y),
    }
    for i, part in enumerate(np.array_split(np.arange(len(a.train_y)), 5), start=1):
        files[f"data_batch_{i}"] = batch(a.train_x[part], a.train_y[part])
    return {f"cifar-10-batches-py/{k}": v for k, v in files.items()}


def _encode(img: np.ndarray, ext: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG" if ext == ".png" else "JPEG", quality=95)
    return buf.getvalue()


def imagefolder_files(a: Arrays, ext: str = ".png") -> dict[str, bytes]:
    files = {}
    for split, xs, ys in (("train", a.train_x, a.train_y), ("test", a.test_x, a.test_y)):
        for i, (img, y) in enumerate(zip(xs, ys, strict=True)):
            files[f"cifar10/{split}/{CLASSES[y]}/{i:05d}{ext}"] = _encode(img, ext)
    return files


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="session")
def arrays() -> Arrays:
    return make_arrays()


@pytest.fixture(scope="session")
def python_archive(tmp_path_factory: pytest.TempPathFactory, arrays: Arrays) -> Path:
    return write_tar(tmp_path_factory.mktemp("py") / "cifar-10-python.tar.gz", python_files(arrays))


@pytest.fixture(scope="session")
def imagefolder_archive(tmp_path_factory: pytest.TempPathFactory, arrays: Arrays) -> Path:
    return write_tar(
        tmp_path_factory.mktemp("if") / "cifar10-png.tar.gz", imagefolder_files(arrays, ".png")
    )


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Path:
    """best.pt of a one-epoch cnn7 run on the tiny data set."""
    from orisel.data.prepare import SplitSpec, prepare
    from orisel.data.sources import load_cifar10
    from orisel.training.config import TrainConfig
    from orisel.training.loop import Trainer

    spec = SplitSpec(val_size=50)
    cfg = TrainConfig(epochs=1, data=spec, device="cpu", early_checkpoint_until=0)
    run = tmp_path_factory.mktemp("tiny-run") / "run"
    Trainer.open(
        cfg, prepare(load_cifar10(python_archive), spec), run, resume=False, progress=False
    ).run()
    return run / "best.pt"


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Path:
    """best.pt of a cnn7 run stopped at step 0: a network as initialised, with its run folder,
    manifest and test metrics, and no training step (the unit tier trains nothing)."""
    from orisel.data.prepare import SplitSpec, prepare
    from orisel.data.sources import load_cifar10
    from orisel.training.config import TrainConfig
    from orisel.training.loop import Trainer

    spec = SplitSpec(val_size=50)
    cfg = TrainConfig(epochs=1, data=spec, device="cpu", early_checkpoint_until=0)
    run = tmp_path_factory.mktemp("untrained-run") / "run"
    data = prepare(load_cifar10(python_archive), spec)
    Trainer.open(cfg, data, run, resume=False, progress=False).run(max_steps=0)
    return run / "best.pt"


def conv_of(model: nn.Module, name: str) -> nn.Conv2d:
    """A model's convolution by name, typed (a module's attributes are not)."""
    from torch import nn

    module = model.get_submodule(name)
    assert isinstance(module, nn.Conv2d)
    return module

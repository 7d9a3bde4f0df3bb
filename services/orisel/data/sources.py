"""CIFAR-10 from the official python-format release or from an ImageFolder tree.

Either layout may be a folder or a tar archive (optionally gzipped). Decoding 60k JPEGs
takes tens of seconds, so the decoded uint8 arrays are cached once, keyed by the sha256
of the source, and every later run loads them in well under a second.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from orisel.kernel.atomic import atomic_path
from orisel.kernel.errors import DataError
from orisel.kernel.provenance import sha256_file

log = logging.getLogger(__name__)

Format = Literal["python", "imagefolder"]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"})
PY_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUT_HELP = (
    "expected the python release (data_batch_1..5, test_batch, batches.meta) or an "
    "ImageFolder tree (train/<class>/*.jpg and test/<class>/*.jpg), as a folder or tar archive"
)
CACHE_VERSION = 1
_Splits = tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ImageDataset:
    """Decoded train and test splits: NHWC uint8 images, int64 labels."""

    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    sha256: str
    source: str
    format: Format

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "sha256": self.sha256,
            "classes": list(self.classes),
            "image_shape": list(self.train_images.shape[1:]),
            "train": len(self.train_labels),
            "test": len(self.test_labels),
            "train_per_class": np.bincount(self.train_labels, minlength=len(self.classes)).tolist(),
            "test_per_class": np.bincount(self.test_labels, minlength=len(self.classes)).tolist(),
        }


class FileTree:
    """Uniform read access to the files of a folder or a tar archive, by relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if root.is_dir():
            self.names = sorted(
                p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
            )
        else:
            try:
                # Kept open across calls (many reads of one archive); close() releases it.
                self._tar = tarfile.open(root)  # noqa: SIM115
                self._members = {
                    m.name.removeprefix("./"): m for m in self._tar.getmembers() if m.isfile()
                }
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                raise DataError(
                    f"{root}: not a readable tar archive ({exc}); the file is corrupt or of an "
                    f"unknown format: {LAYOUT_HELP}"
                ) from exc
            self.names = sorted(self._members)

    def read(self, name: str) -> bytes:
        if self._tar is None:
            return (self.root / name).read_bytes()
        fh = self._tar.extractfile(self._members[name])
        if fh is None:
            raise DataError(f"{self.root}: cannot read member {name}")
        try:
            return fh.read()
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise DataError(
                f"{self.root}: archive is corrupt while reading {name} ({exc})"
            ) from exc

    def iter_in_order(self, names: list[str]) -> Iterator[tuple[str, bytes]]:
        """Yield (name, bytes); archives are read in stored order, which is fast for gzip."""
        if self._tar is None:
            for name in names:
                yield name, self.read(name)
            return
        wanted = set(names)
        for name in self._members:
            if name in wanted:
                yield name, self.read(name)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()


def _source_digest(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    # A folder has no single byte stream: hash each file's path and contents in sorted order.
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _detect(tree: FileTree) -> tuple[Format, str]:
    """Return the layout and the path prefix its files live under."""
    for name in tree.names:
        p = PurePosixPath(name)
        if p.name == "data_batch_1":
            return "python", str(p.parent) if str(p.parent) != "." else ""
    for name in tree.names:
        parts = PurePosixPath(name).parts
        if "train" in parts and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES:
            i = parts.index("train")
            if len(parts) == i + 3:
                return "imagefolder", "/".join(parts[:i])
    raise DataError(f"{tree.root}: unknown data layout; {LAYOUT_HELP}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _unpickle(tree: FileTree, name: str) -> dict[bytes, object]:
    try:
        obj = pickle.loads(tree.read(name), encoding="bytes")
    except KeyError as exc:
        raise DataError(
            f"{tree.root}: python-format file {name} is missing; {LAYOUT_HELP}"
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"{tree.root}: {name} is corrupt ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{tree.root}: {name} is not a CIFAR batch dictionary")
    return obj


def _python_batch(tree: FileTree, name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(tree, name)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except KeyError as exc:
        raise DataError(f"{tree.root}: {name} lacks the key {exc.args[0]!r}") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"{tree.root}: {name} has data of shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_python(tree: FileTree, prefix: str) -> _Splits:
    meta = _unpickle(tree, _join(prefix, "batches.meta"))
    raw_names = meta.get(b"label_names")
    if not isinstance(raw_names, list):
        raise DataError(f"{tree.root}: batches.meta lacks label_names")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw_names)
    parts = [_python_batch(tree, _join(prefix, b)) for b in PY_TRAIN_BATCHES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _python_batch(tree, _join(prefix, "test_batch"))
    return classes, train_x, train_y, test_x, test_y


def _decode(name: str, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"image {name} cannot be decoded ({exc})") from exc


def _load_imagefolder(tree: FileTree, prefix: str) -> _Splits:
    split_files: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    base = len(PurePosixPath(prefix).parts) if prefix else 0
    for name in tree.names:
        parts = PurePosixPath(name).parts
        if len(parts) != base + 3 or PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        split, cls = parts[base], parts[base + 1]
        if split in split_files:
            split_files[split].setdefault(cls, []).append(name)
    train_classes, test_classes = sorted(split_files["train"]), sorted(split_files["test"])
    if not test_classes:
        raise DataError(f"{tree.root}: no test/<class>/ images found; {LAYOUT_HELP}")
    if train_classes != test_classes:
        raise DataError(
            f"{tree.root}: train classes {train_classes} differ from test classes {test_classes}"
        )
    classes = tuple(train_classes)
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        ordered = [(n, c) for c, cls in enumerate(classes) for n in sorted(split_files[split][cls])]
        label_of = dict(ordered)
        index_of = {n: i for i, (n, _) in enumerate(ordered)}
        images: list[np.ndarray | None] = [None] * len(ordered)
        shape: tuple[int, ...] | None = None
        for name, data in tree.iter_in_order([n for n, _ in ordered]):
            img = _decode(name, data)
            if shape is None:
                shape = img.shape
            elif img.shape != shape:
                raise DataError(f"image {name} is {img.shape}, others are {shape}")
            images[index_of[name]] = img
        out.append(np.stack(images))  # type: ignore[arg-type]
        out.append(np.array([label_of[n] for n, _ in ordered], dtype=np.int64))
    train_x, train_y, test_x, test_y = out
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"train images are {train_x.shape[1:]}, test images {test_x.shape[1:]}")
    return classes, train_x, train_y, test_x, test_y


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        log.warning("ignoring unreadable cache %s (%s)", path, exc)
        return None
    if int(arrays.get("cache_version", -1)) != CACHE_VERSION:
        return None
    return arrays


def load_cifar10(source: Path, cache_dir: Path | None = None) -> ImageDataset:
    """Load CIFAR-10 (or any same-layout data set) from `source`, via the cache when possible."""
    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(
            f"data source {source} does not exist; pass --data PATH or set ORISEL_DATA to a "
            f"CIFAR-10 archive or folder ({LAYOUT_HELP})"
        )
    digest = _source_digest(source)
    cache = cache_dir / f"cifar10-{digest}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists() and (arrays := _read_cache(cache)) is not None:
        return ImageDataset(
            classes=tuple(str(c) for c in arrays["classes"]),
            train_images=arrays["train_images"],
            train_labels=arrays["train_labels"],
            test_images=arrays["test_images"],
            test_labels=arrays["test_labels"],
            sha256=digest,
            source=str(source),
            format="python" if str(arrays["format"]) == "python" else "imagefolder",
        )
    tree = FileTree(source)
    try:
        fmt, prefix = _detect(tree)
        log.info("decoding %s (%s layout); cached afterwards", source, fmt)
        loader = _load_python if fmt == "python" else _load_imagefolder
        classes, train_x, train_y, test_x, test_y = loader(tree, prefix)
    finally:
        tree.close()
    ds = ImageDataset(classes, train_x, train_y, test_x, test_y, digest, str(source), fmt)
    if cache is not None:
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                cache_version=np.array(CACHE_VERSION),
                classes=np.array(classes),
                format=np.array(fmt),
                train_images=train_x,
                train_labels=train_y,
                test_images=test_x,
                test_labels=test_y,
            )
    return ds


def download_cifar10(root: Path) -> Path:
    """Fetch the official python-format release with torchvision; needs a network."""
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError) as exc:
        raise DataError(
            f"downloading CIFAR-10 into {root} failed ({exc}); without a network, copy the "
            f"archive to this machine and pass --data PATH"
        ) from exc
    return root / "cifar-10-batches-py"

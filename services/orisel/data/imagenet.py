"""Evaluation images for any network from an ImageFolder tree (`<class>/<image>`, e.g.
ImageNet's `val/<wnid>/*.JPEG`), as a folder or a tar archive: each image's shorter side
resized to 256/224 of the input size, centre-cropped to the input size, kept as uint8 (the
network normalizes them as its own preprocessing says). Class indices follow the sorted
folder names, which is ImageNet's standard order when the folders are its wnids."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from orisel.data.prepare import pick_test_images
from orisel.data.sources import IMAGE_SUFFIXES, FileTree
from orisel.kernel import progress
from orisel.kernel.errors import DataError

FOLDER_HELP = (
    "an ImageFolder tree: <root>/<class>/<image>, e.g. ImageNet's val/<wnid>/*.JPEG, as a "
    "folder or a tar archive"
)
# Where a tree holds several image folders (CIFAR-10's train/ and test/), the evaluation one.
EVAL_SPLITS = ("test", "val")


def _crop(img: Image.Image, size: int) -> np.ndarray:
    short = round(size * 256 / 224)
    w, h = img.size
    scale = short / min(w, h)
    img = img.convert("RGB").resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR
    )
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _class_files(tree: FileTree) -> dict[str, list[str]]:
    """{class: sorted member names} of the tree's one image folder (`<prefix>/<class>/<file>`);
    with several prefixes, the one named test or val."""
    by_prefix: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for name in tree.names:
        p = PurePosixPath(name)
        if p.suffix.lower() in IMAGE_SUFFIXES and len(p.parts) >= 2:
            by_prefix.setdefault(p.parts[:-2], {}).setdefault(p.parts[-2], []).append(name)
    if not by_prefix:
        raise DataError(f"{tree.root}: no images found; expected {FOLDER_HELP}")
    if len(by_prefix) > 1:
        chosen = [k for split in EVAL_SPLITS for k in by_prefix if k and k[-1] == split]
        if not chosen:
            found = ", ".join(sorted("/".join(k) or "." for k in by_prefix))
            raise DataError(
                f"{tree.root}: images in several folders ({found}); expected {FOLDER_HELP}, or "
                f"a tree whose evaluation images are under test/ or val/"
            )
        by_prefix = {chosen[0]: by_prefix[chosen[0]]}
    (classes,) = by_prefix.values()
    return {c: sorted(files) for c, files in sorted(classes.items())}


def imagefolder_eval(
    root: Path, size: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images (N, size, size, 3) uint8, labels (N,), class names) under `root`, in (class,
    file name) order; with `limit`, a subset of that many with the classes' proportions
    (`test_subset`), and only those are decoded."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; expected {FOLDER_HELP}")
    tree = FileTree(root)
    try:
        by_class = _class_files(tree)
        classes = tuple(by_class)
        every = [(i, n) for i, c in enumerate(classes) for n in by_class[c]]
        keep = pick_test_images(np.array([i for i, _ in every]), limit)
        files = [every[k] for k in keep]
        index = {name: k for k, (_, name) in enumerate(files)}
        images = np.empty((len(files), size, size, 3), dtype=np.uint8)
        members = tree.iter_in_order([n for _, n in files])  # stored order: fast for gzip
        for name, data in progress.bar(members, "decoding images", len(files), "image"):
            try:
                with Image.open(io.BytesIO(data)) as img:
                    images[index[name]] = _crop(img, size)
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{name} in {root} is not a readable image ({exc})") from exc
    finally:
        tree.close()
    return images, np.array([i for i, _ in files], dtype=np.int64), classes

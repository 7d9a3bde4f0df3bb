"""Evaluation images for any network from an ImageFolder tree (`<root>/<class>/<image>`, e.g.
ImageNet's `val/<wnid>/*.JPEG`): each image's shorter side resized to 256/224 of the input
size, centre-cropped to the input size, kept as uint8 (the network normalizes them as its
own preprocessing says). Class indices follow the sorted folder names, which is ImageNet's
standard order when the folders are its wnids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from orisel.core import progress
from orisel.core.errors import DataError

FOLDER_HELP = "an ImageFolder tree: <root>/<class>/<image>, e.g. ImageNet's val/<wnid>/*.JPEG"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def _crop(img: Image.Image, size: int) -> np.ndarray:
    short = round(size * 256 / 224)
    w, h = img.size
    scale = short / min(w, h)
    img = img.convert("RGB").resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR
    )
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def imagefolder_eval(
    root: Path, size: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images (N, size, size, 3) uint8, labels (N,), class names) under `root`; with `limit`,
    the first `limit` images in (class, file name) order."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; expected {FOLDER_HELP}")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    files = [
        (i, p)
        for i, c in enumerate(classes)
        for p in sorted((root / c).iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ][:limit]
    if not files:
        raise DataError(f"{root}: no images found; expected {FOLDER_HELP}")
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for k, (_, path) in enumerate(progress.bar(files, "decoding images", len(files), "image")):
        try:
            with Image.open(path) as img:
                images[k] = _crop(img, size)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path} is not a readable image ({exc})") from exc
    return images, np.array([i for i, _ in files], dtype=np.int64), classes

"""ImageNet-style evaluation images from an ImageFolder tree (`<root>/<wnid>/*.JPEG`).

Used for VGG16 and other torchvision models: resize to 256/224 of the input size, centre
crop, then the model's own normalization, which is what torchvision's weights expect.
Folder names sort into the standard class indices when they are ImageNet's wnids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import datasets, transforms

from orisel.core.errors import DataError
from orisel.models.registry import ModelInfo

FOLDER_HELP = "an ImageFolder tree: <root>/<class>/<image>, e.g. ImageNet's val/<wnid>/*.JPEG"


def eval_transform(info: ModelInfo) -> transforms.Compose:
    if info.mean is None or info.std is None:
        raise DataError(f"model {info.name} is not normalized by mean/std; use its own data")
    return transforms.Compose(
        [
            transforms.Resize(round(info.image_size * 256 / 224)),
            transforms.CenterCrop(info.image_size),
            transforms.ToTensor(),
            transforms.Normalize(info.mean, info.std),
        ]
    )


def imagefolder_eval(
    root: Path, info: ModelInfo
) -> torch.utils.data.Dataset[tuple[torch.Tensor, int]]:
    """The images under `root`, preprocessed for the model described by `info`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; expected {FOLDER_HELP}")
    try:
        ds: torch.utils.data.Dataset[tuple[torch.Tensor, int]] = datasets.ImageFolder(
            str(root), transform=eval_transform(info)
        )
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{root}: no images found ({exc}); expected {FOLDER_HELP}") from exc
    return ds

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orisel.core.errors import DataError
from orisel.data.imagenet import imagefolder_eval
from orisel.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo

VGG = ModelInfo("vgg16", 224, "normalize", IMAGENET_MEAN, IMAGENET_STD)


def test_images_are_cropped_and_normalized(tmp_path: Path) -> None:
    for wnid, size in (("n01440764", (300, 400)), ("n01443537", (500, 260))):
        (tmp_path / wnid).mkdir()
        Image.new("RGB", size, (255, 0, 128)).save(tmp_path / wnid / "a.JPEG")
    ds = imagefolder_eval(tmp_path, VGG)
    assert len(ds) == 2  # type: ignore[arg-type]
    x, y = ds[1]
    assert x.shape == (3, 224, 224)
    assert y == 1
    expected = (torch.tensor([255, 0, 128]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), expected.numpy(), atol=0.05)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; expected an ImageFolder tree"):
        imagefolder_eval(tmp_path / "val", VGG)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "n01440764").mkdir()
    with pytest.raises(DataError, match="no images found"):
        imagefolder_eval(tmp_path, VGG)

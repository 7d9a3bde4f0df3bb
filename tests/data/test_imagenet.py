from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orisel.data.imagenet import imagefolder_eval
from orisel.kernel.errors import DataError
from tests.conftest import write_folder, write_tar


def test_images_are_resized_and_centre_cropped(tmp_path: Path) -> None:
    for wnid, size in (("n01440764", (300, 400)), ("n01443537", (500, 260))):
        (tmp_path / wnid).mkdir()
        img = Image.new("RGB", size, (255, 0, 128))
        img.paste((0, 0, 0), (0, 0, 8, size[1]))  # a black band the centre crop cuts away
        img.save(tmp_path / wnid / "a.png")
    images, labels, classes = imagefolder_eval(tmp_path, 64)
    assert images.shape == (2, 64, 64, 3)
    assert images.dtype == np.uint8
    assert labels.tolist() == [0, 1]
    assert classes == ("n01440764", "n01443537")
    np.testing.assert_array_equal(images.reshape(-1, 3).mean(0).round(), [255, 0, 128])
    assert len(imagefolder_eval(tmp_path, 64, limit=1)[0]) == 1


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; expected an ImageFolder tree"):
        imagefolder_eval(tmp_path / "val", 224)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "n01440764").mkdir()
    with pytest.raises(DataError, match="no images found"):
        imagefolder_eval(tmp_path, 224)


def test_an_archive_reads_as_its_folder_and_prefers_the_evaluation_split(tmp_path: Path) -> None:
    files = {}
    for split, colour in (("train", (0, 255, 0)), ("test", (255, 0, 0))):
        for cls in ("cat", "dog"):
            buf = io.BytesIO()
            Image.new("RGB", (40, 40), colour).save(buf, "PNG")
            files[f"cifar10/{split}/{cls}/0.png"] = buf.getvalue()
    archive = write_tar(tmp_path / "images.tar.gz", files)
    folder = write_folder(tmp_path / "tree", files)
    images, labels, classes = imagefolder_eval(archive, 32)
    assert classes == ("cat", "dog")
    assert labels.tolist() == [0, 1]
    np.testing.assert_array_equal(images.reshape(-1, 3).mean(0), [255, 0, 0])  # test/, not train/
    again = imagefolder_eval(folder, 32)
    np.testing.assert_array_equal(again[0], images)
    (folder / "cifar10" / "test").rename(folder / "cifar10" / "other")
    with pytest.raises(DataError, match="images in several folders"):
        imagefolder_eval(folder, 32)


def test_a_limit_keeps_the_classes_proportions(tmp_path: Path) -> None:
    """`--test-subset` on an ImageFolder tree samples every class, not the first few."""
    for k in range(3):
        (tmp_path / f"class{k}").mkdir()
        for i in range(4):
            Image.new("RGB", (8, 8), (60 * k, 0, 0)).save(tmp_path / f"class{k}" / f"{i}.png")
    _, labels, _ = imagefolder_eval(tmp_path, 8, limit=6)
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from orisel.client.cli import main
from orisel.data import sources
from orisel.data.sources import load_cifar10
from orisel.kernel.errors import DataError
from tests.conftest import (
    CLASSES,
    SHARED_CIFAR,
    Arrays,
    imagefolder_files,
    python_files,
    write_folder,
    write_tar,
)


def _by_class(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ImageFolder order is class by class; reorder the originals the same (stable) way."""
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


def test_python_archive_gives_exact_arrays(python_archive: Path, arrays: Arrays) -> None:
    ds = load_cifar10(python_archive)
    assert ds.format == "python"
    assert ds.classes == CLASSES
    np.testing.assert_array_equal(ds.train_images, arrays.train_x)
    np.testing.assert_array_equal(ds.train_labels, arrays.train_y)
    np.testing.assert_array_equal(ds.test_images, arrays.test_x)
    np.testing.assert_array_equal(ds.test_labels, arrays.test_y)


def test_imagefolder_archive_matches_python_layout(
    imagefolder_archive: Path, arrays: Arrays
) -> None:
    ds = load_cifar10(imagefolder_archive)
    assert ds.format == "imagefolder"
    assert ds.classes == CLASSES
    x, y = _by_class(arrays.train_x, arrays.train_y)
    np.testing.assert_array_equal(ds.train_images, x)  # PNG is lossless
    np.testing.assert_array_equal(ds.train_labels, y)
    tx, ty = _by_class(arrays.test_x, arrays.test_y)
    np.testing.assert_array_equal(ds.test_images, tx)
    np.testing.assert_array_equal(ds.test_labels, ty)


@pytest.mark.parametrize("layout", ["python", "imagefolder"])
def test_folders_load_like_archives(tmp_path: Path, arrays: Arrays, layout: str) -> None:
    files = python_files(arrays) if layout == "python" else imagefolder_files(arrays)
    from_folder = load_cifar10(write_folder(tmp_path / "tree", files))
    from_tar = load_cifar10(write_tar(tmp_path / "a.tar.gz", files))
    assert from_folder.format == from_tar.format == layout
    np.testing.assert_array_equal(from_folder.train_images, from_tar.train_images)
    np.testing.assert_array_equal(from_folder.test_labels, from_tar.test_labels)


def test_jpeg_images_decode_close_to_originals(tmp_path: Path, arrays: Arrays) -> None:
    ds = load_cifar10(write_tar(tmp_path / "j.tar.gz", imagefolder_files(arrays, ".jpg")))
    x, _ = _by_class(arrays.train_x, arrays.train_y)
    err = np.abs(ds.train_images.astype(int) - x.astype(int)).mean(axis=(1, 2, 3))
    shuffled = np.abs(ds.train_images.astype(int) - np.roll(x, 1, axis=0).astype(int)).mean()
    # Lossy (chroma subsampling on noisy images) but each image decodes next to its original.
    assert err.max() < 12.0
    assert shuffled > 36.0


def test_decoded_once_then_served_from_cache(
    imagefolder_archive: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_cifar10(imagefolder_archive, cache_dir)
    assert [p.name for p in cache_dir.iterdir()] == [f"cifar10-{first.sha256}.npz"]

    def no_decoding(*_: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(sources, "_load_imagefolder", no_decoding)
    second = load_cifar10(imagefolder_archive, cache_dir)
    np.testing.assert_array_equal(first.train_images, second.train_images)
    assert second.classes == first.classes
    assert second.format == "imagefolder"


def test_cache_is_keyed_by_content(tmp_path: Path, arrays: Arrays, cache_dir: Path) -> None:
    a = load_cifar10(write_tar(tmp_path / "a.tar.gz", python_files(arrays)), cache_dir)
    changed = Arrays(arrays.train_x, (arrays.train_y + 1) % 10, arrays.test_x, arrays.test_y)
    b = load_cifar10(write_tar(tmp_path / "b.tar.gz", python_files(changed)), cache_dir)
    assert a.sha256 != b.sha256
    assert len(list(cache_dir.glob("*.npz"))) == 2
    np.testing.assert_array_equal(b.train_labels, changed.train_y)


def test_missing_source_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; pass --data PATH or set ORISEL_DATA"):
        load_cifar10(tmp_path / "nope.tar.gz")


def test_corrupt_archive(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(DataError, match="not a readable tar archive"):
        load_cifar10(bad)


def test_truncated_archive(tmp_path: Path, python_archive: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(python_archive.read_bytes()[: python_archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"corrupt|not a readable"):
        load_cifar10(cut)


def test_unknown_layout(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "x.tar.gz", {"README.txt": b"hello"})
    with pytest.raises(DataError, match="unknown data layout; expected the python release"):
        load_cifar10(archive)


def test_class_sets_must_agree(tmp_path: Path, arrays: Arrays) -> None:
    files = {k: v for k, v in imagefolder_files(arrays).items() if "/test/truck/" not in k}
    with pytest.raises(DataError, match=r"train classes .* differ from test classes"):
        load_cifar10(write_tar(tmp_path / "x.tar.gz", files))


def test_image_sizes_must_agree(tmp_path: Path, arrays: Arrays) -> None:
    from PIL import Image

    files = imagefolder_files(arrays)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="PNG")
    files["cifar10/train/cat/99999.png"] = buf.getvalue()
    with pytest.raises(DataError, match=r"99999.png is \(16, 16, 3\)"):
        load_cifar10(write_tar(tmp_path / "x.tar.gz", files))


def test_undecodable_image_is_named(tmp_path: Path, arrays: Arrays) -> None:
    files = imagefolder_files(arrays)
    files["cifar10/train/cat/99999.png"] = b"not an image"
    with pytest.raises(DataError, match=r"99999.png cannot be decoded"):
        load_cifar10(write_tar(tmp_path / "x.tar.gz", files))


def test_missing_python_batch(tmp_path: Path, arrays: Arrays) -> None:
    files = {k: v for k, v in python_files(arrays).items() if not k.endswith("test_batch")}
    with pytest.raises(DataError, match="test_batch is missing"):
        load_cifar10(write_tar(tmp_path / "x.tar.gz", files))


def test_cli_data_info_json(
    python_archive: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["data", "info", "--data", str(python_archive), "--cache-dir", str(cache_dir), "--json"]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"] == 300
    assert out["test"] == 100
    assert out["train_per_class"] == [30] * 10
    assert out["format"] == "python"


def test_cli_reports_bad_source_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["data", "info", "--data", str(tmp_path / "missing"), "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 3  # input: the data set is missing
    assert err.count("\n") == 0
    assert err.startswith("orisel: error:")
    assert "--data" in err


def test_tar_members_with_dot_prefix(tmp_path: Path, arrays: Arrays) -> None:
    files = {f"./{k}": v for k, v in python_files(arrays).items()}
    archive = tmp_path / "dot.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    np.testing.assert_array_equal(load_cifar10(archive).train_labels, arrays.train_y)


@pytest.mark.integration
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="the shared CIFAR-10 archive is not here")
def test_real_cifar10_archive(tmp_path: Path) -> None:
    from orisel.runtime.settings import Settings

    ds = load_cifar10(SHARED_CIFAR, Settings().cache_dir)
    assert ds.sha256 == "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db"
    assert ds.train_images.shape == (50_000, 32, 32, 3)
    assert ds.test_images.shape == (
        10_000,
        32,
        32,
        3,
    )
    assert np.bincount(ds.train_labels).tolist() == [5000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.classes == CLASSES

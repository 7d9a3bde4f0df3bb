"""An image folder's classes are scored against the network's outputs they name: a network of
five named outputs and a folder of three of them, where the right accuracy is counted in the
test from the images' colours; without a way to match them, the folder is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import orisel
from orisel.client.cli import main
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.tables import read_table

NAMES = ["cat", "red", "dog", "green", "blue"]  # the network's outputs, in order
RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
# folder class -> the colours of its images: one red image is blue, one blue image green.
FOLDER = {"red": ["red", "red", "red", "blue"], "green": ["green"] * 2, "blue": ["blue"] * 2}
FOLDER["blue"].append("green")

NETWORK = """
import torch
from torch import nn


class Colours(nn.Module):
    # Outputs cat, red, dog, green, blue: each colour's logit is its channel's mean.
    def __init__(self):
        super().__init__()
        self.pick = nn.Conv2d(3, 3, 1, bias=False)
        self.act = nn.ReLU()
        self.head = nn.Linear(3, 5)
        with torch.no_grad():
            self.pick.weight.copy_(torch.eye(3)[:, :, None, None])
            self.head.weight.zero_()
            self.head.bias.fill_(-1.0)
            for out, channel in ((1, 0), (3, 1), (4, 2)):
                self.head.weight[out, channel] = 1.0
                self.head.bias[out] = 0.0

    def forward(self, x):
        return self.head(self.act(self.pick(x)).mean((2, 3)))
"""


def _folder(root: Path) -> Path:
    for cls, colours in FOLDER.items():
        (root / cls).mkdir(parents=True)
        for i, colour in enumerate(colours):
            Image.new("RGB", (12, 12), RGB[colour]).save(root / cls / f"{i}.png")
    return root


def _expected() -> tuple[float, dict[str, float]]:
    """Accuracy counted from the images: the network answers an image's colour."""
    right = {cls: [c == cls for c in colours] for cls, colours in FOLDER.items()}
    every = [r for rs in right.values() for r in rs]
    return sum(every) / len(every), {c: sum(r) / len(r) for c, r in right.items()}


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    source = tmp_path / "colours.py"
    source.write_text(NETWORK)
    return source


def test_the_api_scores_a_folder_of_some_classes_against_their_outputs(
    tmp_path: Path, colours: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = orisel.load(model=f"{colours}:Colours", input_size=8, device="cpu")
    folder = _folder(tmp_path / "images")
    with pytest.raises(InvalidArgument, match=r"3 classes .*5 outputs"):
        orisel.imagefolder(folder, net, progress=False)
    images, labels = orisel.imagefolder(folder, net, class_map=NAMES, progress=False)
    # blue, green, red (sorted folders) are outputs 4, 3, 1.
    np.testing.assert_array_equal(labels, [4, 4, 4, 3, 3, 1, 1, 1, 1])
    scores = orisel.tune(
        net,
        stimuli=("gratings",),
        permutations=0,
        n_orientations=4,
        n_phases=2,
        n_frequencies=2,
        progress=False,
    )
    curves = orisel.ablate(
        net, scores, images, labels, seeds=(0,), fractions=(0.0,), random_halves=0, progress=True
    )["curves"]
    # A network that is no chain of modules is swept set by set, with its own bar.
    assert "ablation sweep act" in capsys.readouterr().err
    intact = curves[curves["order"] == "gosi:descending"].iloc[0]
    accuracy, per_class = _expected()
    assert intact["accuracy"] == pytest.approx(accuracy)  # 7 of 9
    assert intact["accuracy_class1"] == pytest.approx(per_class["red"])
    assert intact["accuracy_class3"] == pytest.approx(per_class["green"])
    assert intact["accuracy_class4"] == pytest.approx(per_class["blue"])
    assert "accuracy_class0" not in curves  # no image of "cat"
    with pytest.raises(InvalidArgument, match=r"labels: .*\[0, 5\)"):
        orisel.ablate(net, scores, images, labels + 5, progress=False)


def test_the_command_line_refuses_then_matches_by_a_class_map(
    tmp_path: Path, colours: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path / "images")
    net = ["--model", f"{colours}:Colours", "--input-size", "8", "--device", "cpu"]
    grid = ["--n-orientations", "4", "--n-phases", "2", "--n-frequencies", "2"]
    tune = [*net, *grid, "--permutations", "0", "--stimuli", "gratings", "-q"]
    assert main(["tune", *tune, "--data", str(folder), "--out", str(tmp_path / "t0")]) == 2
    assert "--class-map" in capsys.readouterr().err
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    data = ["--data", str(folder), "--class-map", str(names)]
    assert main(["tune", *tune, *data, "--out", str(tmp_path / "t")]) == 0
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["class_outputs"] == {"blue": 4, "green": 3, "red": 1}
    assert summary["classes_matched_by"] == "class map"
    out = tmp_path / "a"
    sweep = ["--seeds", "0", "--fractions", "0", "--random-halves", "0", "-q"]
    args = ["ablate", *net, *data, "--scores", str(tmp_path / "t"), *sweep, "--out", str(out)]
    assert main(args) == 0
    curves = read_table(out / "curves.csv")
    assert curves["accuracy"][0] == pytest.approx(_expected()[0])


def test_a_job_reads_its_stored_class_map(tmp_path: Path, colours: Path) -> None:
    """A service job names the images and the class map in the store, as refs the servicer
    resolved (extraction.spec.data_ref); the worker fetches both and matches the classes."""
    import tarfile

    from orisel.api.scoring.v1 import scoring_pb2
    from orisel.extraction.inputs import job_images
    from orisel.extraction.spec import ExtractJob, ModelRef, data_ref
    from orisel.store.backend import LocalStore

    folder = _folder(tmp_path / "images")
    archive = tmp_path / "images.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname=".")
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    store = LocalStore(tmp_path / "store")
    store.put_file("users/me/images.tar", archive)
    store.put_file("users/me/names", names)  # a stored copy keeps no file name
    net = orisel.load(model=f"{colours}:Colours", input_size=8, device="cpu")
    msg = scoring_pb2.ScoreSpec()
    msg.data.key = "users/me/images.tar"
    # Every job names its network; job_images reads only the images of it.
    spec = ExtractJob(model=ModelRef(architecture="colours"), **data_ref(store, msg, "spec"))
    with pytest.raises(InvalidArgument, match="class_map"):
        job_images(spec, net, store, tmp_path / "cache", None)
    msg.class_map.key = "users/me/names"
    spec = ExtractJob(model=ModelRef(architecture="colours"), **data_ref(store, msg, "spec"))
    got = job_images(spec, net, store, tmp_path / "cache", None)
    assert got is not None
    np.testing.assert_array_equal(got.targets, [4, 4, 4, 3, 3, 1, 1, 1, 1])
    assert got.matched_by == "class map"

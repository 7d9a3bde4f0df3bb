"""Networks other than cnn7: ResNet's residual blocks by default, a module the forward pass
runs twice read call by call (never silently the first call only), VGG16 at a small input
size, all through the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from orisel.client.cli import main
from orisel.data.imagenet import imagefolder_eval
from orisel.extraction.extract import make_stimuli
from orisel.extraction.network import Network, load_network
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.tables import read_table
from orisel.scoring.spec import TuneSpec
from tests.conftest import Arrays, imagefolder_files, write_folder

SMALL = TuneSpec(n_orientations=4, n_phases=2, n_frequencies=2)


@pytest.fixture(scope="module")
def resnet() -> Network:
    return load_network(model_name="resnet18", device="cpu", input_size=64)


def test_resnet_default_layers_are_its_blocks(resnet: Network) -> None:
    assert resnet.default_layers() == tuple(f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1))


def test_a_reused_module_is_read_call_by_call(resnet: Network) -> None:
    stim = make_stimuli("gratings", 64, SMALL)
    names = ("layer1.0", "layer1.0.relu:1", "layer1.0.relu:2")
    r = resnet.stimulus_responses(stim, names, "mean", 8)
    assert all(v.shape == (len(stim), 64) for v in r.values())  # one row per stimulus, per call
    # The block's output is its ReLU's second call (after the residual addition) ...
    np.testing.assert_array_equal(r["layer1.0"], r["layer1.0.relu:2"])
    # ... and the first call (inside the block) is another tensor.
    assert not np.allclose(r["layer1.0.relu:1"], r["layer1.0.relu:2"])
    with pytest.raises(
        InvalidArgument, match=r"runs 2 times \(layer1\.0\.relu:1, layer1\.0\.relu:2\)"
    ):
        resnet.stimulus_responses(stim, ("layer1.0.relu",), "mean", 8)


def test_every_relu_of_an_unknown_family_is_named_per_call(resnet: Network) -> None:
    class Wrapped(nn.Module):  # not ResNet-shaped: the generic rule applies
        def __init__(self) -> None:
            super().__init__()
            self.inner = resnet.model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(x)
            return out

    net = load_network(model_name="resnet18", device="cpu", input_size=64)
    net.model = Wrapped().eval()
    layers = net.default_layers()
    assert "inner.layer1.0.relu:1" in layers
    assert "inner.layer1.0.relu:2" in layers
    assert "inner.relu" in layers  # the stem's ReLU runs once


def _tune(tmp_path: Path, *args: str) -> dict[str, np.ndarray]:
    out = tmp_path / "tune"
    rc = main(
        [
            "tune",
            *args,
            "--device",
            "cpu",
            "--out",
            str(out),
            "--stimuli",
            "gratings",
            "--permutations",
            "3",
            "-q",
            "--json",
        ]
    )
    assert rc == 0
    return read_table(out / "units.csv")


@pytest.mark.integration  # `orisel tune` end to end on a ResNet
def test_tune_a_resnet_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    units = _tune(tmp_path, "--model", "resnet18", "--input-size", "64")
    json.loads(capsys.readouterr().out)
    layers = {str(x) for x in units["layer"]}
    assert layers == {f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)}
    assert (units["layer"] == "layer4.1").sum() == 512


@pytest.mark.integration
def test_tune_vgg16_at_a_small_input_size(tmp_path: Path) -> None:
    units = _tune(
        tmp_path,
        "--model",
        "vgg16",
        "--input-size",
        "32",
        "--layers",
        "features.1,features.29,classifier.1",
    )
    assert {str(x) for x in units["layer"]} == {"features.1", "features.29", "classifier.1"}
    assert (units["layer"] == "features.29").sum() == 512


USER_MODULE = """
from torch import nn

class Mine(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 5, padding=2)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.act2(self.conv2(self.act1(self.conv1(x)))).mean((2, 3)))
"""

# (model flag, analysed layers, the higher layer invariance reads, the lower one it ablates)
FAMILIES = {
    "resnet18": ("resnet18", "layer1.0,layer2.0", "layer4.1", "layer1.0"),
    "vgg16": ("vgg16", "features.1,features.3", "features.29", "features.1"),
    "file": ("{file}:Mine", "act1,act2", "act2", "act1"),
}


@pytest.mark.integration
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_analysis_for_any_model_on_an_imagefolder(
    tmp_path: Path, arrays: Arrays, family: str
) -> None:
    """tune with class selectivity, ablate and invariance, for a random ResNet-18, VGG16 and a
    module from the user's file at 32 px, on a small generated ImageFolder tree, from the
    command line; then the same through the Python API, which must give the same numbers."""
    source = tmp_path / "mine.py"
    source.write_text(USER_MODULE)
    model, layers, higher, lower = FAMILIES[family]
    model = model.format(file=source)
    data = write_folder(tmp_path / "data", imagefolder_files(arrays, ".png"))
    test = data / "cifar10" / "test"
    # The folder's ten classes are outputs 0-9 of the 1000 a torchvision model has.
    class_map = tmp_path / "classes.json"
    class_map.write_text(json.dumps({c: i for i, c in enumerate(sorted(os.listdir(test)))}))
    torch.manual_seed(0)
    net = ["--model", model, "--input-size", "32", "--device", "cpu", "--data", str(test)]
    net += ["--class-map", str(class_map)]
    grid = ["--n-orientations", "4", "--n-phases", "2", "--n-frequencies", "2"]
    tune = tmp_path / "tune"
    assert (
        main(
            [
                "tune",
                *net,
                *grid,
                "--layers",
                layers,
                "--permutations",
                "3",
                "--stimuli",
                "gratings",
                "--out",
                str(tune),
                "-q",
            ]
        )
        == 0
    )
    units = read_table(tune / "units.csv")
    assert {str(x) for x in units["layer"]} == set(layers.split(","))
    assert np.isfinite(units["csi"]).all()  # class selectivity on the folder's 100 images
    ab = tmp_path / "ablate"
    assert (
        main(
            [
                "ablate",
                *net,
                "--scores",
                str(tune),
                "--layers",
                layers,
                "--point",
                "relu",
                "--orders",
                "gosi,csi",
                "--seeds",
                "0",
                "--fractions",
                "0,1",
                "--random-halves",
                "3",
                "--out",
                str(ab),
                "-q",
            ]
        )
        == 0
    )
    curves = read_table(ab / "curves.csv")
    intact = curves["accuracy"][curves["fraction"] == 0.0]
    assert len(set(intact.tolist())) == 1  # nothing ablated: one accuracy
    inv = tmp_path / "inv"
    assert (
        main(
            [
                "invariance",
                *net,
                "--scores",
                str(tune),
                "--layers",
                higher,
                "--ablate-layers",
                lower,
                "--point",
                "relu",
                "--seeds",
                "0",
                "--out",
                str(inv),
                "-q",
            ]
        )
        == 0
    )
    assert (inv / "summary.json").is_file()

    # The Python API on the very same module (the CLI's random weights are not reproducible
    # across two builds, so the API gets the module the CLI would build, then both ablate it).
    import orisel

    api_net = orisel.load(model=model, input_size=32, device="cpu")
    images, labels, _ = imagefolder_eval(test, 32)
    scores = orisel.tune(
        api_net,
        images=images,
        labels=labels,
        layers=tuple(layers.split(",")),
        stimuli=("gratings",),
        permutations=3,
        n_orientations=4,
        n_phases=2,
        n_frequencies=2,
    )
    assert len(scores) == len(units["unit"])
    csi = orisel.class_selectivity(api_net, images, labels, layers=tuple(layers.split(",")))
    np.testing.assert_allclose(csi["csi"].to_numpy(), scores["csi"].to_numpy(), rtol=1e-6)
    tables = orisel.ablate(
        api_net,
        scores,
        images,
        labels,
        layers=tuple(layers.split(",")),
        point="relu",
        orders=("gosi",),
        seeds=(0,),
        fractions=(0.0, 1.0),
        random_halves=3,
    )
    assert set(tables) >= {"curves", "splits"}
    full = tables["curves"][tables["curves"]["fraction"] == 1.0]
    assert (full["n_ablated"] > 0).all()
    shifted = orisel.invariance(
        api_net,
        scores,
        images,
        layers=(higher,),
        ablate_layers=(lower,),
        point="relu",
        seeds=(0,),
    )
    assert len(shifted["invariance"]) > 0


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation, on purpose
def test_a_scripted_resnet_is_measured_and_ablated_like_the_module(tmp_path: Path) -> None:
    """A TorchScript ResNet-18 (torch.jit.script, saved and loaded) has the module's layers,
    its shared ReLUs read call by call, and the same responses and ablation effects."""
    import orisel

    torch.manual_seed(0)
    module = torchvision.models.resnet18(num_classes=10).eval()
    torch.jit.save(torch.jit.script(module), str(tmp_path / "net.ts"))
    python = orisel.Network.from_module(module, 32)
    script = orisel.load(model=str(tmp_path / "net.ts"), input_size=32, device="cpu")
    assert script.default_layers() == python.default_layers()
    layers = ("layer1.0.relu:1", "layer1.0.relu:2", "layer2.0.bn1", "layer4.1")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % 10
    got = script.image_responses(images, layers, "mean", 16)
    want = python.image_responses(images, layers, "mean", 16)
    for name in layers:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)
    assert not np.allclose(want["layer1.0.relu:1"], want["layer1.0.relu:2"])  # two calls
    scores = orisel.tune(
        python,
        images=images,
        labels=labels,
        layers=("layer1.0", "layer2.0"),
        stimuli=("gratings",),
        permutations=3,
        n_orientations=4,
        n_phases=2,
        n_frequencies=2,
    )
    ablate = {
        "layers": ("layer1.0", "layer2.0"),
        "point": "relu",
        "orders": ("gosi",),
        "seeds": (0,),
        "fractions": (0.0, 0.5, 1.0),
        "random_halves": 3,
    }
    curves = {
        name: orisel.ablate(net, scores, images, labels, **ablate)["curves"]
        for name, net in (("script", script), ("python", python))
    }
    np.testing.assert_array_equal(curves["script"]["accuracy"], curves["python"]["accuracy"])
    np.testing.assert_allclose(
        curves["script"]["loss_increase_mean"], curves["python"]["loss_increase_mean"], atol=1e-5
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation, on purpose
def test_wrapping_a_script_leaves_the_callers_module_as_it_was() -> None:
    import orisel

    script = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    script.train()
    orisel.Network.from_module(script, 16)
    assert script.training  # not switched to eval behind the caller's back


class _Shared(nn.Module):
    """One ReLU module after two convolutions of 16 channels: called twice per pass."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.act(self.conv2(self.act(self.conv1(x)))).mean((2, 3)))
        return out


def test_the_api_ablates_one_call_of_a_reused_module() -> None:
    """orisel.ablate of `act:1` at fraction 1 loses what zeroing the first call by hand loses,
    not what silencing both calls (or the second) loses."""
    import orisel

    torch.manual_seed(0)
    model = _Shared()
    with torch.no_grad():
        model.head.weight.mul_(40.0)  # a loss increase far from 0
    net = orisel.Network.from_module(model, 16)
    assert net.default_layers() == ("act:1", "act:2")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(40) % 4
    scores = orisel.tune(
        net,
        layers=("act:1", "act:2"),
        stimuli=("gratings",),
        permutations=3,
        n_orientations=4,
        n_phases=2,
        n_frequencies=2,
    )
    x = net.preprocess_u8(images)
    y = torch.from_numpy(labels)

    def loss(first: bool, second: bool) -> torch.Tensor:
        with torch.no_grad():
            a = torch.relu(model.conv1(x)) * (0.0 if first else 1.0)
            b = torch.relu(model.conv2(a)) * (0.0 if second else 1.0)
            return nn.functional.cross_entropy(model.head(b.mean((2, 3))), y, reduction="none")

    intact = loss(False, False)
    got = {}
    for layer in ("act:1", "act:2"):
        curves = orisel.ablate(
            net,
            scores,
            images,
            labels,
            layers=(layer,),
            point="relu",
            fractions=(0.0, 1.0),
            orders=("gosi",),
            seeds=(0,),
            random_halves=0,
        )["curves"]
        got[layer] = curves[curves["fraction"] == 1.0]["loss_increase_mean"].to_numpy()
    want_first = float((loss(True, False) - intact).mean())
    want_second = float((loss(False, True) - intact).mean())
    np.testing.assert_allclose(got["act:1"], want_first, atol=1e-5)
    np.testing.assert_allclose(got["act:2"], want_second, atol=1e-5)
    assert abs(want_first - want_second) > 0.05

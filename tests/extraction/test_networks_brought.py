"""Networks a researcher brings, each with a known answer computed by hand in the test:
functional activations read and ablated call by call, several outputs read at the one
selected, one-channel inputs, token layers (ViT) read over their tokens, signed layers
rectified only as recorded, and `orisel layers`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

import orisel
from orisel.client.cli import main
from orisel.extraction.extract import make_stimuli
from orisel.extraction.spec import ExtractSpec
from orisel.kernel.errors import FailedPrecondition, InvalidArgument
from orisel.science.hooks import ablated
from orisel.science.responses import forward_collect

SMALL = ExtractSpec(n_orientations=4, n_phases=2, n_frequencies=2)
GRID = {"n_orientations": 4, "n_phases": 2, "n_frequencies": 2, "stimuli": ("gratings",)}


def _images(n: int = 24, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 4


class Functional(nn.Module):
    """Every activation a function call: two F.relu at the top level, one inside a block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block()
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = self.block(x)
        x = F.relu(self.conv2(x))
        out: torch.Tensor = self.head(x.mean((2, 3)))
        return out


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x)) + x


def test_functional_activations_are_layers_read_and_ablated_by_call() -> None:
    torch.manual_seed(0)
    model = Functional().eval()
    net = orisel.Network.from_module(model, 16)
    assert net.default_layers() == ("F.relu:1", "block.F.relu", "F.relu:2")
    assert "F.relu" in str(net.source["functional"])
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        a = F.relu(model.conv1(x))
        inner = F.relu(model.block.conv(a))
        b = inner + a
        c = F.relu(model.conv2(b))
    got = forward_collect(net.model, [x], ("F.relu:1", "block.F.relu", "block", "F.relu:2"))
    for name, want in (("F.relu:1", a), ("block.F.relu", inner), ("block", b), ("F.relu:2", c)):
        np.testing.assert_allclose(got[name], want.mean((2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    with ablated(net.model, "F.relu:1", [2, 5]), torch.no_grad():
        silenced = net.model(x)
    with torch.no_grad():
        a0 = a.clone()
        a0[:, [2, 5]] = 0.0
        b0 = F.relu(model.block.conv(a0)) + a0
        want = model.head(F.relu(model.conv2(b0)).mean((2, 3)))
    torch.testing.assert_close(silenced, want)


class Untraceable(nn.Module):
    """A functional activation behind data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        out: torch.Tensor = F.relu(y).mean((2, 3)) if y.sum() > 0 else y.mean((2, 3))
        return out


def test_no_default_layers_says_why_and_what_to_pass() -> None:
    net = orisel.Network.from_module(Untraceable(), 16)
    with pytest.raises(FailedPrecondition, match=r"torch.fx could not trace it.*--layers"):
        net.default_layers()


class TwoHeads(nn.Module):
    def __init__(self, as_tuple: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 4)
        self.as_tuple = as_tuple

    def forward(self, x: torch.Tensor) -> object:
        h = self.act(self.conv(x)).mean((2, 3))
        if self.as_tuple:
            return h, self.head(h)
        return {"features": h, "logits": self.head(h)}


def test_a_network_of_several_outputs_is_read_at_the_selected_one() -> None:
    torch.manual_seed(0)
    model = TwoHeads().eval()
    with pytest.raises(InvalidArgument, match=r"output: .*dict with keys features, logits"):
        orisel.Network.from_module(model, 16)
    net = orisel.Network.from_module(model, 16, output="logits")
    assert net.default_layers() == ("act",)
    assert net.source["output"] == "logits"
    images, labels = _images()
    scores = orisel.tune(net, permutations=0, **GRID)
    curves = orisel.ablate(
        net,
        scores,
        images,
        labels,
        layers=("act",),
        point="relu",
        fractions=(0.0, 1.0),
        orders=("gosi",),
        seeds=(0,),
        random_halves=0,
    )["curves"]
    x, y = net.preprocess_u8(images), torch.from_numpy(labels)
    with torch.no_grad():
        intact = F.cross_entropy(model(x)["logits"], y, reduction="none")
        silenced = F.cross_entropy(model.head(torch.zeros(len(x), 8)), y, reduction="none")
    full = curves[curves["fraction"] == 1.0]["loss_increase_mean"].to_numpy()
    np.testing.assert_allclose(full, float((silenced - intact).mean()), atol=1e-5)
    tuple_net = orisel.Network.from_module(TwoHeads(as_tuple=True), 16, output=1)
    assert tuple_net.model(x).shape == (len(x), 4)
    with pytest.raises(InvalidArgument, match=r"tuple of 2"):
        orisel.Network.from_module(TwoHeads(as_tuple=True), 16, output=2)
    assert (
        orisel.invariance(
            net,
            scores,
            images,
            labels,
            layers=("act",),
            ablate_layers=("act",),
            point="relu",
            seeds=(0,),
            damage_candidates=2,
            damage_matched=1,
            shift=1,
        )["invariance"].shape[0]
        > 0
    )


class Grey(nn.Module):
    """A 28x28 one-channel network (MNIST's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 5)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.act(self.conv(x)).mean((2, 3)))
        return out


def test_a_one_channel_network_sees_grey_stimuli_and_the_luma_of_images() -> None:
    torch.manual_seed(0)
    model = Grey().eval()
    net = orisel.Network.from_module(model, 28)
    assert net.info.channels == 1
    assert net.source["input_channels"] == 1
    stim = make_stimuli("gratings", 28, SMALL)
    got = orisel.responses(
        net, "gratings", layers=("act",), n_orientations=4, n_phases=2, n_frequencies=2
    )["act"]
    pixels = torch.from_numpy(stim.render(np.arange(len(stim))))[:, None]
    with torch.no_grad():
        want = model.act(model.conv(pixels)).mean((2, 3)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    images = np.zeros((2, 28, 28, 3), dtype=np.uint8)
    images[0, ..., 0] = 255  # pure red: luma 0.299
    x = net.preprocess_u8(images)
    assert x.shape == (2, 1, 28, 28)
    np.testing.assert_allclose(x[0].numpy(), 0.299, rtol=1e-6)
    images, labels = _images(16, 28)
    scores = orisel.tune(net, layers=("act",), permutations=0, **GRID)
    curves = orisel.ablate(
        net,
        scores,
        images,
        labels,
        layers=("act",),
        fractions=(0.0, 1.0),
        orders=("gosi",),
        seeds=(),
        random_halves=0,
    )["curves"]
    grey = net.preprocess_u8(images)
    y = torch.from_numpy(labels)
    with torch.no_grad():
        intact = F.cross_entropy(model(grey), y, reduction="none")
        silenced = F.cross_entropy(model.fc(torch.zeros(len(y), 6)), y, reduction="none")
    full = curves[curves["fraction"] == 1.0]["loss_increase_mean"].to_numpy()
    np.testing.assert_allclose(full, float((silenced - intact).mean()), atol=1e-5)
    shifted = orisel.invariance(
        net,
        scores,
        images,
        labels,
        layers=("act",),
        ablate_layers=("act",),
        seeds=(0,),
        damage_candidates=2,
        damage_matched=1,
        shift=1,
    )
    assert len(shifted["invariance"]) > 0


def _tiny_vit() -> torchvision.models.VisionTransformer:
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=16,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
        num_classes=4,
    ).eval()


def test_token_layers_are_read_over_tokens_and_ablated_on_their_units() -> None:
    model = _tiny_vit()
    net = orisel.Network.from_module(model, 16)
    layers = ("encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1")
    assert net.default_layers() == layers
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        h = model._process_input(x)
        h = torch.cat([model.class_token.expand(len(x), -1, -1), h], dim=1)
        h0 = model.encoder.layers[0](h + model.encoder.pos_embedding)
    mean = forward_collect(net.model, [x], layers[:1], tokens="mean")[layers[0]]
    cls = forward_collect(net.model, [x], layers[:1], tokens="cls")[layers[0]]
    np.testing.assert_allclose(mean, h0.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cls, h0[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    with ablated(net.model, layers[0], [1, 6]), torch.no_grad():
        silenced = net.model(x)
    with torch.no_grad():
        z = h0.clone()
        z[..., [1, 6]] = 0.0  # units are the last axis of (batch, tokens, units)
        want = model.heads(model.encoder.ln(model.encoder.layers[1](z))[:, 0])
    torch.testing.assert_close(silenced, want)
    attention = "encoder.layers.encoder_layer_0.self_attention"
    with pytest.raises(InvalidArgument, match=r"returns a tuple"):
        forward_collect(net.model, [x], (attention,))
    with (
        pytest.raises(InvalidArgument, match=r"returns a tuple"),
        ablated(net.model, attention, [0]),
    ):
        net.model(x)
    tuned = orisel.tune(net, permutations=0, tokens="cls", **GRID)
    assert set(tuned["layer"]) == set(layers)
    assert len(tuned) == 16


class Signed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.conv(x).mean((2, 3)))
        return out


def test_signed_responses_are_rectified_only_as_recorded() -> None:
    torch.manual_seed(0)
    net = orisel.Network.from_module(Signed(), 16)
    with pytest.raises(InvalidArgument, match=r"rectify: .*layer conv, whose responses"):
        orisel.tune(net, layers=("conv",), permutations=0, rectify=False, **GRID)
    units = orisel.tune(net, layers=("conv",), permutations=0, **GRID)
    stim = make_stimuli("gratings", 16, SMALL)
    r = orisel.responses(
        net, "gratings", layers=("conv",), n_orientations=4, n_phases=2, n_frequencies=2
    )["conv"]
    assert len(r) == len(stim)
    np.testing.assert_allclose(units["negative_fraction"], (r < 0).mean(0))
    assert (units["negative_fraction"] > 0).any()


def test_orisel_layers_lists_the_defaults_and_every_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["layers", "resnet18", "--input-size", "32", "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert [r["layer"] for r in rows] == [f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)]
    assert rows[0]["shape"] == [64, 8, 8]
    assert rows[-1]["units"] == 512
    assert main(["layers", "resnet18", "--input-size", "32", "--all", "--json", "-q"]) == 0
    every = {r["layer"] for r in json.loads(capsys.readouterr().out)["layers"]}
    assert {"layer1.0.relu:1", "layer1.0.relu:2", "fc"} <= every


def test_loading_a_network_leaves_the_callers_random_stream_and_names_its_class() -> None:
    model = TwoHeads()
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    net = orisel.Network.from_module(model, 16, output="logits")
    torch.testing.assert_close(torch.rand(3), want)
    assert net.source["module"] == "TwoHeads"


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation, on purpose
def test_a_scripted_one_channel_network_is_read_like_the_module() -> None:
    torch.manual_seed(0)
    model = Grey().eval()
    script = orisel.Network.from_module(torch.jit.script(model), 28)
    python = orisel.Network.from_module(model, 28)
    assert script.info.channels == 1
    x = python.probe(3) + torch.rand(3, 1, 28, 28)
    want = forward_collect(python.model, [x], ("act",))["act"]
    np.testing.assert_allclose(forward_collect(script.model, [x], ("act",))["act"], want, rtol=1e-5)


def test_swin_channels_last_maps_are_read_and_ablated_on_their_channels() -> None:
    """A Swin Transformer's layers return (batch, height, width, channels): units are the
    last axis, read and silenced there, against a hook-free computation."""
    torch.manual_seed(0)
    model = torchvision.models.SwinTransformer(
        patch_size=[4, 4],
        embed_dim=8,
        depths=[1, 1],
        num_heads=[1, 1],
        window_size=[2, 2],
        num_classes=4,
    ).eval()
    net = orisel.Network.from_module(model, 16)
    assert net.default_layers() == ("features.0", "features.1", "features.2", "features.3")
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        stem = model.features[0](x)
        first = model.features[1](stem)  # (3, 4, 4, 8): channels last
    got = forward_collect(net.model, [x], ("features.1",))["features.1"]
    np.testing.assert_allclose(got, first.mean((1, 2)).numpy(), rtol=1e-5, atol=1e-6)
    with ablated(net.model, "features.1", [2, 5]), torch.no_grad():
        silenced = net.model(x)
    with torch.no_grad():
        z = first.clone()
        z[..., [2, 5]] = 0.0
        h = model.norm(model.features[3](model.features[2](z)))
        want = model.head(model.flatten(model.avgpool(model.permute(h))))
    torch.testing.assert_close(silenced, want)

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orisel.kernel.errors import FailedPrecondition, InvalidArgument, NotFound
from orisel.models import CNN7, build_model
from tests.conftest import conv_of

# The table in shared/paper/METHODS.md: name -> (channels, height, width).
METHODS_TABLE = {
    "layer1": (32, 30, 30),
    "layer2": (32, 14, 14),
    "layer3": (64, 12, 12),
    "layer4": (64, 5, 5),
    "layer5": (128, 3, 3),
    "layer6": (128, 1, 1),
    "fc1": (512,),
    "fc2": (10,),
}


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    for name, module in model.named_children():
        module.register_forward_hook(lambda _m, _i, o, n=name: seen.__setitem__(n, o))
    model(x)
    return seen


def test_cnn7_layer_shapes_match_the_paper() -> None:
    out = _outputs(CNN7().eval(), torch.randn(2, 3, 32, 32))
    for name, shape in METHODS_TABLE.items():
        assert tuple(out[name].shape[1:]) == shape, name
    for i in range(1, 7):
        assert out[f"bn{i}"].shape == out[f"layer{i}"].shape
    assert out["bn7"].shape == (2, 512)


def test_cnn7_structure() -> None:
    model = CNN7()
    names = [n for n, _ in model.named_children()]
    assert names == [
        "layer1",
        "bn1",
        "layer2",
        "bn2",
        "layer3",
        "bn3",
        "layer4",
        "bn4",
        "layer5",
        "bn5",
        "layer6",
        "bn6",
        "fc1",
        "bn7",
        "fc2",
    ]
    strides = [getattr(model, f"layer{i}").stride for i in range(1, 7)]
    assert strides == [(1, 1), (2, 2), (1, 1), (2, 2), (1, 1), (2, 2)]
    assert all(getattr(model, f"layer{i}").padding == (0, 0) for i in range(1, 7))
    assert not any(isinstance(m, torch.nn.MaxPool2d | torch.nn.Dropout) for m in model.modules())


def test_cnn7_order_is_conv_relu_then_bn() -> None:
    model = CNN7().train()
    out = _outputs(model, torch.randn(16, 3, 32, 32))
    for i in range(1, 7):
        assert out[f"layer{i}"].min() >= 0  # ReLU applied inside layerN
        assert out[f"bn{i}"].min() < 0  # BN after the ReLU re-centres
    conv = torch.nn.functional.conv2d(
        torch.ones(1, 3, 32, 32), conv_of(model, "layer1").weight, conv_of(model, "layer1").bias
    )
    model.eval()
    assert torch.equal(_outputs(model, torch.ones(1, 3, 32, 32))["layer1"], conv.relu())


def test_cnn7_init_is_keras_glorot() -> None:
    torch.manual_seed(0)
    w = conv_of(CNN7(), "layer3").weight
    fan_in, fan_out = 32 * 9, 64 * 9
    limit = (6 / (fan_in + fan_out)) ** 0.5
    assert w.abs().max() <= limit
    assert w.std().item() == pytest.approx(limit / 3**0.5, rel=0.05)
    bias = conv_of(CNN7(), "layer3").bias
    assert bias is not None
    assert bias.abs().sum() == 0


def test_unknown_model_is_named() -> None:
    with pytest.raises(NotFound, match="model 'resnet9000' is unknown; choose cnn7"):
        build_model("resnet9000")


def test_torchvision_model_by_name() -> None:
    model, info = build_model("resnet18", num_classes=10)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert info.preprocessing == "normalize"
    assert info.image_size == 224


def test_hub_weights_missing_offline_is_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(NotFound, match=r"not in the local cache .*--weights PATH"):
        build_model("vgg16", weights="IMAGENET1K_V1")


def test_unknown_weights_name_lists_choices() -> None:
    with pytest.raises(InvalidArgument, match="weights: must be one of DEFAULT, IMAGENET1K_V1"):
        build_model("resnet18", weights="IMAGENET_BOGUS")


def test_local_weights_file(tmp_path: Path) -> None:
    src, _ = build_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    loaded, _ = build_model("resnet18", weights=str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_cnn7_weights_from_a_checkpoint_dict(tmp_path: Path) -> None:
    src = CNN7()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": src.state_dict(), "epoch": 3}, path)
    loaded, _ = build_model("cnn7", weights=str(path))
    assert torch.equal(conv_of(loaded, "layer1").weight, conv_of(src, "layer1").weight)


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cnn7.pt"
    torch.save(CNN7().state_dict(), path)
    with pytest.raises(FailedPrecondition, match="does not fit model ResNet"):
        build_model("resnet18", weights=str(path))


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        build_model("cnn7", weights=str(tmp_path / "nope.pt"))

"""The 7-layer CNN of Ukita (2019/2020) for 32x32 CIFAR-10 images.

conv(3x3, valid) -> ReLU -> BatchNorm, six times, then a 512-unit dense layer (ReLU, BN) and
a 10-way linear read-out. As in the original Keras model, `layerN` is the convolution *with*
its ReLU, so a hook on `layerN` reads the conv+ReLU output where the paper measures units,
and `bnN` reads the BatchNorm output where the paper ablates.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# (name, out channels, stride); every kernel is 3x3 without padding.
CONV_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("layer1", 32, 1),
    ("layer2", 32, 2),
    ("layer3", 64, 1),
    ("layer4", 64, 2),
    ("layer5", 128, 1),
    ("layer6", 128, 2),
)
HIDDEN_UNITS = 512
# Keras' BatchNormalization defaults (momentum 0.99 = PyTorch 0.01, epsilon 1e-3), as in the paper.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class ConvReLU(nn.Conv2d):
    """A convolution whose output is already rectified (Keras' Conv2D(activation='relu'))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class LinearReLU(nn.Linear):
    """A dense layer whose output is already rectified (Keras' Dense(activation='relu'))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


def _out_size(size: int, stride: int) -> int:
    return (size - 3) // stride + 1


class CNN7(nn.Module):
    """The paper's 7-layer CNN; `image_size` other than 32 keeps the layer structure."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        channels, size = in_channels, image_size
        for i, (name, out, stride) in enumerate(CONV_LAYERS, start=1):
            self.add_module(name, ConvReLU(channels, out, kernel_size=3, stride=stride))
            self.add_module(f"bn{i}", nn.BatchNorm2d(out, eps=BN_EPS, momentum=BN_MOMENTUM))
            channels, size = out, _out_size(size, stride)
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for cnn7 (needs >= 32)")
        self.fc1 = LinearReLU(channels * size * size, HIDDEN_UNITS)
        self.bn7 = nn.BatchNorm1d(HIDDEN_UNITS, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.fc2 = nn.Linear(HIDDEN_UNITS, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras' defaults: Glorot-uniform weights and zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                assert m.bias is not None
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (name, _, _) in enumerate(CONV_LAYERS, start=1):
            x = getattr(self, f"bn{i}")(getattr(self, name)(x))
        x = self.bn7(self.fc1(torch.flatten(x, 1)))
        logits: torch.Tensor = self.fc2(x)  # the softmax lives in the loss
        return logits


def unit_covariates(model: nn.Module, layer: str) -> dict[str, torch.Tensor]:
    """Per-unit properties of `layer` that make a unit's ablation costly whatever it is
    selective for, read from the weights (no images needed): the mean rectified response
    (BatchNorm's running mean over the training images), the gain BatchNorm applies to it
    (|gamma| / sqrt(running var + eps)) and the norm of the weights that carry it to the next
    layer. Empty for other models or layers, which have no such adapter."""
    names = [name for name, _, _ in CONV_LAYERS] + ["fc1"]
    if not isinstance(model, CNN7) or layer not in names:
        return {}
    i = names.index(layer)
    bn = getattr(model, f"bn{i + 1}")
    nxt = model.fc2 if layer == "fc1" else getattr(model, names[i + 1])
    weight = nxt.weight.detach()
    units = bn.num_features
    # The next layer's weights grouped by the unit they read: conv in-channels, or the dense
    # layer's inputs, which flatten each channel's map in turn.
    per_unit = (
        weight.transpose(0, 1)
        if weight.dim() == 4
        else weight.reshape(weight.shape[0], units, -1).transpose(0, 1)
    )
    return {
        "mean_activation": bn.running_mean.detach().clone(),
        "bn_gain": (bn.weight.detach().abs() / torch.sqrt(bn.running_var.detach() + bn.eps)),
        "outgoing_norm": per_unit.reshape(units, -1).norm(dim=1),
    }

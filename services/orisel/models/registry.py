"""Build a model by name, with weights from torchvision's cache or a local file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orisel.kernel.errors import FailedPrecondition, InvalidArgument, NotFound
from orisel.models.cnn7 import CNN7


@dataclass(frozen=True)
class ModelInfo:
    """How inputs must be prepared for a model: the paper's mean image, or mean/std."""

    name: str
    image_size: int
    preprocessing: str  # "mean_image" (cnn7) or "normalize" (torchvision weights)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: int = 3  # input channels


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def _torchvision_names() -> tuple[str, ...]:
    import torchvision.models as tvm

    return tuple(sorted(tvm.list_models(module=tvm)))


def available_models() -> tuple[str, ...]:
    return ("cnn7", *_torchvision_names())


def _check_name(name: str) -> None:
    if name not in available_models():
        raise NotFound(
            f"model {name!r} is unknown; choose cnn7 or a torchvision classification model "
            f"(e.g. vgg16, resnet18, alexnet; `orisel models` lists all)"
        )


def _hub_weights(name: str, weights: str, download: bool) -> dict[str, Any]:
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    try:
        entry = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError as exc:
        allowed = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise InvalidArgument("weights", f"one of {allowed} or a file path", weights) from exc
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(entry.url)
    if not cache.exists() and not download:
        raise NotFound(
            f"pretrained weights {name}/{entry.name} are not in the local cache {cache}; "
            f"pass --download on a machine with a network, or --weights PATH to a local file"
        )
    try:
        state: dict[str, Any] = entry.get_state_dict(progress=False, check_hash=True)
    except OSError as exc:
        raise NotFound(
            f"fetching {entry.url} failed ({exc}); pass --weights PATH to a local weights file"
        ) from exc
    return state


def load_weights_file(path: Path) -> dict[str, Any]:
    """A state dict from a file: a bare state dict or an orisel checkpoint's `model`."""
    if not path.is_file():
        raise NotFound(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise FailedPrecondition(f"weights file {path} cannot be read ({exc})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise FailedPrecondition(f"weights file {path} holds no state dict")
    return obj


def load_state(model: nn.Module, state: dict[str, Any], what: str) -> None:
    """Load strictly, turning a mismatch into one line that says which model was expected."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise FailedPrecondition(
            f"{what} does not fit model {type(model).__name__} ({first}); "
            f"it was saved from another model or class count"
        ) from exc


def _classes_in(state: dict[str, Any]) -> int:
    """Output size of a state dict's read-out: its last 2-D weight (torchvision's key order)."""
    mats = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    if not mats:
        raise FailedPrecondition("the weights hold no linear read-out to size the model from")
    return int(mats[-1].shape[0])


def build_model(
    name: str,
    num_classes: int | None = None,
    weights: str | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Return (model, how to preprocess for it).

    `weights` is None (random init), a torchvision weights name ("DEFAULT",
    "IMAGENET1K_V1", ...) or a path to a local state-dict / checkpoint file. Without
    `num_classes`, pretrained weights decide it; random models get 10 (cnn7) or 1000.
    """
    _check_name(name)
    is_file = weights is not None and (os.sep in weights or Path(weights).suffix in {".pt", ".pth"})
    if name == "cnn7" and weights is not None and not is_file:
        raise InvalidArgument(
            "weights", "a local weights file for cnn7 (it has no hub weights)", weights
        )
    state: dict[str, Any] | None = None
    if weights is not None:
        state = (
            load_weights_file(Path(weights)) if is_file else _hub_weights(name, weights, download)
        )
    if num_classes is None:
        num_classes = _classes_in(state) if state is not None else (10 if name == "cnn7" else 1000)
    if name == "cnn7":
        size = image_size or 32
        model: nn.Module = CNN7(num_classes=num_classes, image_size=size)
        info = ModelInfo(name, size, "mean_image")
    else:
        import torchvision.models as tvm

        size = image_size or 224
        try:
            model = tvm.get_model(name, weights=None, num_classes=num_classes, **_sized(name, size))
        except ValueError as exc:  # MaxViT's attention grids must divide the input size
            raise FailedPrecondition(
                f"{name} cannot be built for images of {size} px ({exc}); pass an input size "
                "it can take (--input-size, API input_size=)"
            ) from exc
        info = ModelInfo(name, size, "normalize", IMAGENET_MEAN, IMAGENET_STD)
    if state is not None:
        load_state(model, state, f"weights {weights}")
    return model, info


def _sized(name: str, size: int) -> dict[str, Any]:
    """The build arguments of torchvision models made for one input size (ViT's position
    embedding, MaxViT's attention grids), so that they run at the size analysed; weights
    trained at 224 px then load only at 224."""
    if name.startswith("vit_"):
        return {"image_size": size}
    if name.startswith("maxvit_"):
        return {"input_size": (size, size)}
    return {}


USER_MODEL = re.compile(r"^(?P<path>.+\.py):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")


def user_model(spec: str, weights: str | None = None) -> nn.Module:
    """A researcher's own network: `path/to/file.py:ClassName`, built with no arguments,
    then given `weights` (a state-dict file) if named. The file runs as Python: only name
    files you trust."""
    import importlib.util

    match = USER_MODEL.match(spec)
    if match is None:
        raise InvalidArgument("--model", "path/to/file.py:ClassName", spec)
    path = Path(match["path"]).expanduser()
    if not path.is_file():
        raise NotFound(f"model file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"orisel_user_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise InvalidArgument("--model", "a Python file", str(path))
    code = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(code)
    except Exception as exc:
        raise FailedPrecondition(f"model file {path} failed to import: {exc!r}") from exc
    cls = getattr(code, match["cls"], None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = [
            n for n, v in vars(code).items() if isinstance(v, type) and issubclass(v, nn.Module)
        ]
        raise NotFound(f"{path} has no nn.Module class {match['cls']!r}; it has: {found}")
    try:
        model = cls()
    except TypeError as exc:
        raise FailedPrecondition(
            f"{match['cls']}() needs arguments ({exc}); wrap it in a class that takes none, or "
            "use the Python API (orisel.Network.from_module)"
        ) from exc
    if weights is not None:
        load_state(model, load_weights_file(Path(weights)), f"weights {weights}")
    return model


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip whose one top folder holds `code/`."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.split("/", 2)[1:2] == ["code"] for n in names)


def exported_model(path: Path, input_size: int | None = None) -> tuple[nn.Module, int | None]:
    """A `torch.export` archive (.pt2) as a module whose submodules can be read (unflattened),
    and the input size it was exported with; its batch dimension must be dynamic, as orisel
    feeds batches of any size. A TorchScript archive is translated to a module whose every
    submodule can be read and ablated call by call (`models.scripted`), checked against the
    archive on `input_size` (default 224) images."""
    if not path.is_file():
        raise NotFound(f"model file {path} does not exist")
    if _is_torchscript(path):
        from orisel.models.scripted import scripted_model

        return scripted_model(path, input_size or 224), input_size
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise FailedPrecondition(
            f"{path} is neither a torch.export nor a TorchScript archive ({exc!r})"
        ) from exc
    example = program.example_inputs[0][0] if program.example_inputs else None
    if example is not None:
        batch = 2 if example.shape[0] != 2 else 3
        try:
            torch.export.unflatten(program)(example.new_zeros((batch, *example.shape[1:])))
        except Exception as exc:
            raise FailedPrecondition(
                f"{path} was exported for batches of {example.shape[0]} only: export it with a "
                'dynamic batch, dynamic_shapes={"x": {0: torch.export.Dim("batch")}}'
            ) from exc
    size = int(example.shape[-1]) if example is not None and example.ndim == 4 else None
    return torch.export.unflatten(program), size


def resolve_device(name: str) -> torch.device:
    """ "auto" (CUDA when there is one, else the CPU), "cpu" or "cuda[:N]"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device", "cpu or auto on a machine without CUDA", name)
    return device

"""Models by name: the paper's cnn7 and any torchvision classification model."""

from orisel.models.cnn7 import CNN7
from orisel.models.registry import (
    ModelInfo,
    available_models,
    build_model,
    load_weights_file,
)

__all__ = ["CNN7", "ModelInfo", "available_models", "build_model", "load_weights_file"]

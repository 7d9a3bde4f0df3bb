"""Training: the paper's recipe, checkpoints over time, exact resume."""

from orisel.training.config import TrainConfig, checkpoint_steps
from orisel.training.loop import Trainer, evaluate

__all__ = ["TrainConfig", "Trainer", "checkpoint_steps", "evaluate"]

"""Training: the recipe (config), the loop, checkpoints, and the training service."""

"""Activation extraction: a network from a checkpoint, its preprocessing, unit responses."""

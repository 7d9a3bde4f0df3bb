"""Ablation evaluation: cumulative sweeps, the median split, and shift-invariance."""

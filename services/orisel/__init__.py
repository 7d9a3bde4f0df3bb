"""orisel: orientation and class selectivity of single units, and their causal role by ablation."""

__version__ = "0.1.0"

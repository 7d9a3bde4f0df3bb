"""Selectivity scoring: orientation and class selectivity for every unit of a network."""

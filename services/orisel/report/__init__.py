"""Figures and reports built from analysis outputs."""

"""Shared utilities every layer may use: errors, atomic files, names, progress, provenance."""

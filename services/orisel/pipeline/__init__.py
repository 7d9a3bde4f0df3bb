"""The paper pipeline: one job that trains, scores and ablates a population, then reports."""

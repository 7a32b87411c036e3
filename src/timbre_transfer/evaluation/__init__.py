"""Evaluation: metrics that score transfers."""

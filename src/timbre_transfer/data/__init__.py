"""Datasets: audio folders -> features, and built-in synthetic audio."""

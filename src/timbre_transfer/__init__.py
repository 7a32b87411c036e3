"""timbre_transfer: many-to-many timbre transfer on log1p mel-spectrograms."""

__version__ = "0.3.0"

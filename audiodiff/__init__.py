"""audiodiff: audio diffusion models trained with spectral regularization (arXiv 2603.02447)."""

__version__ = "0.1.0"

"""The model catalogue. Importing this package registers every model."""
from . import lightgcn, mf, pop  # noqa: F401
from .base import DivergedError, Recommender

__all__ = ["DivergedError", "Recommender"]

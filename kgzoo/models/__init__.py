"""The model catalogue. Importing this package imports every model module, which registers it.

A new model is a new module in this package decorated with ``@register_model``; nothing
else needs editing.
"""
import importlib
import pkgutil

from .base import DivergedError, Recommender

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name not in ("base", "layers"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["DivergedError", "Recommender"]

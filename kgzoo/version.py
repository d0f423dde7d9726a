"""kgzoo's version, in a module of its own so that every layer (models included) may read it
without importing the public API (``kgzoo/__init__.py`` re-exports it)."""
__version__ = "0.1.0"

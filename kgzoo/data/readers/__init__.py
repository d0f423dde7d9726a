"""Readers, one per source format; each maps raw ids to kgzoo's id spaces and keeps the maps."""
from ._io import DataFormatError, factorize, read_columns, read_id_lists, read_recbole, read_text

__all__ = ["DataFormatError", "factorize", "read_columns", "read_id_lists", "read_recbole", "read_text"]

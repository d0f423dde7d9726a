"""One registry class for models, datasets and pretrained weights.

The habit comes from timm's ``_registry.py``: one decorator to register, one lookup, and
shell-style pattern matching (:mod:`fnmatch`) for listing.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """A registered object with its metadata (family, paper, domain, ...)."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named catalogue of objects.

    Args:
        kind: what is registered ("model", "dataset", "pretrained"), used in error messages.

    Raises:
        KeyError: on lookup of an unknown name (the message suggests the nearest names).
        ValueError: on registering a name twice, or on a pattern that matches nothing
            (with ``strict=True``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, obj: T, **meta: Any) -> T:
        """Register ``obj`` under ``name`` with metadata ``meta``; returns ``obj``."""
        if not name or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, obj, dict(meta))
        return obj

    def decorator(self, name: str, **meta: Any) -> Callable[[T], T]:
        """``@registry.decorator("name", family=...)``: register the decorated object."""

        def wrap(obj: T) -> T:
            return self.register(name, obj, **meta)

        return wrap

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """The registered names closest to ``name`` (difflib ratio)."""
        return difflib.get_close_matches(name, list(self._entries), n=n, cutoff=0.4)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``.

        Raises:
            KeyError: unknown name; the message lists the nearest registered names.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = self.suggest(name)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._entries))})"
            ) from None

    def get(self, name: str) -> T:
        """The object registered under ``name`` (see :meth:`entry` for errors)."""
        return self.entry(name).obj

    def list(self, pattern: str | Iterable[str] = "*", strict: bool = False, **meta: Any) -> list[str]:
        """Sorted names matching one or more shell-style patterns and metadata filters.

        Args:
            pattern: ``"kg*"``, ``"*"`` or a list of patterns (a name matching any is kept).
            strict: raise ``ValueError`` when nothing matches.
            **meta: keep entries whose metadata equals these values (e.g. ``family="kg-gnn"``).
        """
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        names = sorted(
            n
            for n, e in self._entries.items()
            if any(fnmatch.fnmatchcase(n, p) for p in patterns)
            and all(e.meta.get(k) == v for k, v in meta.items())
        )
        if strict and not names:
            raise ValueError(
                f"no {self.kind} matches {patterns} (known: {', '.join(sorted(self._entries))})"
            )
        return names

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in sorted(self._entries)]


MODELS: Registry[type] = Registry("model")
DATASETS: Registry[Any] = Registry("dataset")
PRETRAINED: Registry[Any] = Registry("pretrained weights")


def register_model(name: str, *, family: str, paper: str, **meta: Any) -> Callable[[type], type]:
    """Class decorator: ``@register_model("kgat", family="kg-gnn", paper="Wang et al., KDD 2019")``.

    Raises:
        ValueError: the name is already registered to another class.
    """

    def wrap(cls: type) -> type:
        MODELS.register(name, cls, family=family, paper=paper, **meta)
        cls.model_name = name
        return cls

    return wrap

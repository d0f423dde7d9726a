"""One registry class for models, datasets and pretrained weights.

The habit comes from timm's ``_registry.py``: one decorator to register, one lookup, and
shell-style pattern matching (:mod:`fnmatch`) for listing. User code joins by import:
:func:`load_plugins` imports given modules or files and the ``kgzoo.plugins`` entry points.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """A registered object with its metadata (family, paper, domain, ...)."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


def _qualified(obj: Any) -> str:
    """``module.QualName`` of a class or function (where a registered name's holder is defined),
    else its type's: what a name collision names on both sides."""
    if hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


class Registry(Generic[T]):
    """A named catalogue of objects.

    Args:
        kind: what is registered ("model", "dataset", "pretrained"), used in error messages.
        builtins: a module whose import registers the built-in entries, imported once, at the
            first lookup, listing or registration (not when the registry is created; also set by
            :meth:`builtins_from`); ``None``: nothing to import.

    Raises:
        KeyError: on lookup of an unknown name (the message suggests the nearest names).
        ValueError: on registering a name twice (naming where both objects are defined and the
            names taken), or on a pattern that matches nothing (with ``strict=True``).
    """

    def __init__(self, kind: str, builtins: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._builtins = builtins
        self._importing = threading.local()  # this thread is importing the built-ins (their registrations)

    def builtins_from(self, module: str) -> None:
        """Import ``module`` (dotted name), which registers the built-in entries, at the first
        lookup, listing or registration: :mod:`kgzoo` names ``kgzoo.models`` for :data:`MODELS`, so
        that the models, and Lightning with them, are imported only where a model is named."""
        self._builtins = module

    @property
    def _listed(self) -> dict[str, Entry[T]]:
        """The entries, after importing the built-in catalogue's module once (``builtins``): a
        lookup, not an import of :mod:`kgzoo`, registers the built-in models, so that commands
        and code that never name a model do not import them (and Lightning with them)."""
        module = self._builtins
        if module is not None and not getattr(self._importing, "active", False):
            # Another thread's lookup meanwhile imports the module too, which blocks on the import
            # lock until this one's import is done, rather than reading the half-filled entries;
            # this thread's own registrations (the built-ins') come back here and pass through.
            self._importing.active = True
            try:
                imported = importlib.import_module(module)
            finally:
                self._importing.active = False
            # done only where the module finished (not where this thread's import of it, a direct
            # `import kgzoo.models.x`, is still running: it was handed the half-done module)
            if not getattr(getattr(imported, "__spec__", None), "_initializing", False):
                self._builtins = None
        return self._entries

    def register(self, name: str, obj: T, **meta: Any) -> T:
        """Register ``obj`` under ``name`` with metadata ``meta``; returns ``obj``."""
        if not name or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")
        if name in self._listed and self._entries[name].obj is not obj:  # a built-in's name included
            raise ValueError(f"{self.kind} {name!r} is already registered to {_qualified(self._entries[name].obj)}; "
                             f"register {_qualified(obj)} under another name (taken: {', '.join(sorted(self._entries))})")
        self._entries[name] = Entry(name, obj, dict(meta))
        return obj

    def decorator(self, name: str, **meta: Any) -> Callable[[T], T]:
        """``@registry.decorator("name", family=...)``: register the decorated object."""

        def wrap(obj: T) -> T:
            return self.register(name, obj, **meta)

        return wrap

    def __contains__(self, name: str) -> bool:
        return name in self._listed

    def __len__(self) -> int:
        return len(self._listed)

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """The registered names closest to ``name`` (difflib ratio)."""
        return difflib.get_close_matches(name, list(self._listed), n=n, cutoff=0.4)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``.

        Raises:
            KeyError: unknown name; the message lists the nearest registered names.
        """
        try:
            return self._listed[name]
        except KeyError:
            close = self.suggest(name)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._entries))})"
            ) from None

    def get(self, name: str) -> T:
        """The object registered under ``name`` (see :meth:`entry` for errors)."""
        return self.entry(name).obj

    def name_of(self, obj: Any) -> str | None:
        """The first name (sorted) under which ``obj`` itself is registered (identity, not
        equality: a subclass of a registered model is not that model), else ``None``."""
        return next((e.name for e in self.entries() if e.obj is obj), None)

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
            for n, e in self._listed.items()
            if any(fnmatch.fnmatchcase(n, p) for p in patterns)
            and all(e.meta.get(k) == v for k, v in meta.items())
        )
        if strict and not names:
            raise ValueError(
                f"no {self.kind} matches {patterns} (known: {', '.join(sorted(self._entries))})"
            )
        return names

    def entries(self) -> list[Entry[T]]:
        return [e for _, e in sorted(self._listed.items())]


MODELS: Registry[type] = Registry("model")  # its built-ins: kgzoo/__init__.py
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


#: the entry-point group of installed packages that add models, datasets or fusion layers
PLUGIN_GROUP = "kgzoo.plugins"
_LOADED_PLUGINS: dict[str, ModuleType] = {}


def _import_file(path: Path) -> ModuleType:
    """Import the ``.py`` file ``path`` as the module named by its stem (``my_fusion.py`` ->
    ``my_fusion``), so that its classes can be pickled and named by ``my_fusion.Class``."""
    name = path.stem
    if not name.isidentifier():
        raise ValueError(f"--import {path}: {name!r} is not a valid module name")
    old = sys.modules.get(name)
    if old is not None:
        if Path(getattr(old, "__file__", "") or "").resolve() == path:
            return old
        raise ValueError(f"--import {path}: a module named {name!r} is already imported from "
                         f"{getattr(old, '__file__', None) or 'elsewhere'}; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--import {path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugins(modules: Iterable[str] = (), entry_points: bool = True) -> list[ModuleType]:
    """Import user code that registers models, datasets or fusion layers, each module once.

    Args:
        modules: dotted module names (``"my_pkg.my_model"``) or paths to ``.py`` files
            (``"my_fusion.py"``, imported as the module ``my_fusion``), in order.
        entry_points: also load every entry point of the group ``kgzoo.plugins``
            (``[project.entry-points."kgzoo.plugins"] my_models = "my_pkg.models"`` in a
            package's ``pyproject.toml``), after ``modules``.

    Returns:
        The imported modules (those loaded by an earlier call included), in order.

    Raises:
        FileNotFoundError: a path ending in ``.py`` (or containing a path separator) that is
            no file. ImportError: no module of that name (the message names it); errors raised
            by the plugin itself propagate unchanged. ValueError: a file whose stem is not a
            module name, or whose module name is taken by another module.
    """
    out: list[ModuleType] = []
    for given in modules:
        key = str(given)
        if key not in _LOADED_PLUGINS:
            if key.endswith(".py") or "/" in key or "\\" in key:
                path = Path(key).expanduser().resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"--import {key}: no such file")
                _LOADED_PLUGINS[key] = _import_file(path)
            else:
                try:
                    _LOADED_PLUGINS[key] = importlib.import_module(key)
                except ModuleNotFoundError as e:
                    if e.name is not None and key.split(".")[:len(e.name.split("."))] == e.name.split("."):
                        raise ImportError(f"--import {key}: no module named {e.name!r} (a dotted module name "
                                          f"on sys.path, or a path to a .py file)") from None
                    raise
        out.append(_LOADED_PLUGINS[key])
    if entry_points:
        for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            key = f"entry point {ep.name} = {ep.value}"
            if key not in _LOADED_PLUGINS:
                try:
                    loaded = ep.load()
                except ModuleNotFoundError as e:
                    raise ImportError(f"{PLUGIN_GROUP} {key}: {e}") from e
                _LOADED_PLUGINS[key] = loaded if isinstance(loaded, ModuleType) else sys.modules[ep.module]
            out.append(_LOADED_PLUGINS[key])
    return out

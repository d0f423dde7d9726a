"""Public names of a package imported on first use (PEP 562, module ``__getattr__``).

``kgzoo``, :mod:`kgzoo.bench` and :mod:`kgzoo.hub` export names whose modules import the models
and Lightning; importing them eagerly made every ``kgzoo`` command, ``kgzoo --help`` included,
pay for that import. Each package lists ``name -> module`` and gets its ``__getattr__`` and
``__dir__`` from :func:`lazy_exports`.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any, Callable


def lazy_exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for the names ``homes``.

    Args:
        package: the package's ``__name__``. homes: public name -> the absolute name of the
            module defining it (``"kgzoo.api"``; absolute, so that ``tests/unit/test_imports.py``
            sees the import).

    Returns:
        ``(__getattr__, __dir__)``: ``__getattr__(name)`` imports the name's module, keeps the
        value in the package (later lookups are plain attribute reads) and returns it.

        A name that is not in ``homes`` but names a submodule (``kgzoo.models``, ``kgzoo.hub``)
        imports it: the eager imports these replace had bound every such submodule, so that
        ``import kgzoo; kgzoo.hub.evaluate(...)`` worked, as it still does.

    Raises:
        AttributeError: (``__getattr__``) a name that is neither in ``homes`` nor a submodule, as
            for any module.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            if not name.isidentifier() or name.startswith("_") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return importlib.import_module(f"{package}.{name}")  # (binds itself in the package)
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__

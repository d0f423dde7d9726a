"""Where kgzoo reads and writes on disk: one precedence rule, argument > ``KGZOO_*`` > XDG.

- :func:`data_dir`: dataset files. ``root``, else ``$KGZOO_DATA_DIR``, else
  ``$XDG_CACHE_HOME/kgzoo/data`` (``~/.cache/kgzoo/data``).
- :func:`cache_dir`: computed artefacts of one kind (:data:`CACHE_KINDS`: ``hub`` downloaded
  pretrained weights, ``kge`` TransE/TransR entity vectors, ``text`` frozen PLM text vectors,
  ``runs`` bench rows and checkpoints outside the tracked tree). ``root``, else
  ``$KGZOO_HOME/<kind>``, else ``$XDG_CACHE_HOME/kgzoo/<kind>`` (``~/.cache/kgzoo/<kind>``).
- :func:`user_config_dir`: the user's own settings (``kgzoo data import`` registers datasets in
  its ``datasets/``): ``$KGZOO_USER_CONFIG``, else ``$XDG_CONFIG_HOME/kgzoo`` (``~/.config/kgzoo``).
- :func:`checkout_dir`: the source checkout kgzoo runs from (``None`` when installed);
  :func:`committed_results_dir` and :func:`committed_leaderboard_dir` its ``benchmarks/results``
  (the committed rows) and ``benchmarks/leaderboard``, whatever the working directory.
- :func:`config_dirs`: zoo config folders, the packaged one (:func:`packaged_config_dir`)
  first, then every folder of ``$KGZOO_CONFIG_DIR`` (an :data:`os.pathsep`-separated list),
  then ``extra``; a later folder's ``<model>/<dataset>.yaml`` overrides the same file of an
  earlier one (:class:`kgzoo.config.ZooConfig`).

An empty environment variable counts as unset. No function here creates a folder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

#: the kinds of :func:`cache_dir`; each is a sub-folder of ``$KGZOO_HOME`` / the user cache
CACHE_KINDS = ("hub", "kge", "text", "runs")

PathLike = str | os.PathLike


def _user_cache() -> Path:
    """``$XDG_CACHE_HOME/kgzoo``, else ``~/.cache/kgzoo``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "kgzoo"


def data_dir(root: PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$KGZOO_DATA_DIR``, else ``$XDG_CACHE_HOME/kgzoo/data``
    (``~/.cache/kgzoo/data``). A dataset ``name`` lives in ``data_dir(root) / name``.

    Returns:
        The folder (``~`` expanded; not created).
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("KGZOO_DATA_DIR")
    return Path(env).expanduser() if env else _user_cache() / "data"


def user_config_dir() -> Path:
    """The user's kgzoo settings folder: ``$KGZOO_USER_CONFIG``, else ``$XDG_CONFIG_HOME/kgzoo``
    (``~/.config/kgzoo``). ``datasets/<name>.json`` in it are the datasets ``kgzoo data import``
    registered (:mod:`kgzoo.data.folders`).

    Returns:
        The folder (``~`` expanded; not created).
    """
    env = os.environ.get("KGZOO_USER_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser() / "kgzoo"


def cache_dir(kind: str, root: PathLike | None = None) -> Path:
    """The cache folder of ``kind``: ``root``, else ``$KGZOO_HOME/<kind>``, else
    ``$XDG_CACHE_HOME/kgzoo/<kind>`` (``~/.cache/kgzoo/<kind>``).

    Args:
        kind: one of :data:`CACHE_KINDS` (``"hub"``, ``"kge"``, ``"text"``, ``"runs"``).
        root: an explicit folder (returned as it is, ``~`` expanded).

    Returns:
        The folder (not created).

    Raises:
        ValueError: an unknown ``kind`` (naming the known ones).
    """
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; known: {', '.join(CACHE_KINDS)}")
    if root is not None:
        return Path(root).expanduser()
    home = os.environ.get("KGZOO_HOME")
    return (Path(home).expanduser() if home else _user_cache()) / kind


def packaged_config_dir() -> Path:
    """The zoo configs shipped with kgzoo, found from the imported ``kgzoo`` package itself.

    The repository keeps them at its top, ``zoo_configs/``; the build configuration
    (``[tool.setuptools.package-dir]`` in pyproject.toml, packages in setup.py) maps that
    folder to the package ``kgzoo.zoo_configs``, so a wheel install holds them in
    ``kgzoo/zoo_configs/``. A source checkout (``pip install -e .``, or the checkout on
    ``PYTHONPATH``) has no ``kgzoo/zoo_configs/`` and reads ``zoo_configs/`` beside the package.
    Found by path, not by importing ``kgzoo.zoo_configs``: an editable install's import hook
    would answer for its own checkout even when another checkout's ``kgzoo`` is imported.

    Returns:
        ``kgzoo/zoo_configs`` where it is a folder, else ``<checkout>/zoo_configs`` (whether
        or not it exists). The one place that knows where the packaged configs are.
    """
    root = checkout_dir()
    return Path(__file__).resolve().parent / "zoo_configs" if root is None else root / "zoo_configs"


def checkout_dir() -> Path | None:
    """The source checkout kgzoo runs from: the folder above the imported ``kgzoo`` package, which
    holds ``zoo_configs/`` and ``benchmarks/``; ``None`` for an installed kgzoo (a wheel keeps its
    configs inside the package, ``kgzoo/zoo_configs/``: :func:`packaged_config_dir`)."""
    package = Path(__file__).resolve().parent
    return None if (package / "zoo_configs").is_dir() else package.parent


def committed_results_dir() -> Path | None:
    """The committed result rows: ``<checkout>/benchmarks/results`` (:func:`checkout_dir`), whatever
    the working directory; ``None`` for an installed kgzoo (it ships a read-only copy of them:
    :func:`published_results_dir`). ``kgzoo bench``'s ``--leaderboard-only`` and ``kgzoo tune``'s
    ``--results`` default to it."""
    root = checkout_dir()
    return None if root is None else root / "benchmarks" / "results"


def published_results_dir() -> Path | None:
    """The published result rows, for reading: a checkout's committed rows
    (:func:`committed_results_dir`), or those shipped inside an installed kgzoo
    (``kgzoo/published/``, the build's copy of ``benchmarks/results/*.jsonl``: pyproject.toml,
    setup.py); ``None`` where neither is there. ``kgzoo bench`` compares its rows with them
    (``--reference``) and ``--with-published`` puts them beside one's own in a leaderboard. Never
    written: an installed kgzoo's rows of one's own go to ``--results``."""
    committed = committed_results_dir()
    if committed is not None:
        return committed
    shipped = Path(__file__).resolve().parent / "published"
    return shipped if shipped.is_dir() else None


def committed_leaderboard_dir() -> Path | None:
    """The leaderboard generated from :func:`committed_results_dir`: ``<checkout>/benchmarks/leaderboard``;
    ``None`` for an installed kgzoo."""
    root = checkout_dir()
    return None if root is None else root / "benchmarks" / "leaderboard"


def config_dirs(extra: Iterable[PathLike] = ()) -> list[Path]:
    """Zoo config folders, lowest precedence first: :func:`packaged_config_dir`, the folders of
    ``$KGZOO_CONFIG_DIR`` (:data:`os.pathsep`-separated, empty entries ignored), then ``extra``
    (e.g. ``kgzoo bench --config-dir DIR``). A file in a later folder overrides the same
    ``<model>/<file>.yaml`` in an earlier one.

    Returns:
        The folders (``~`` expanded), duplicates kept once at their last position.

    Raises:
        FileNotFoundError: a folder of ``$KGZOO_CONFIG_DIR`` or ``extra`` that is not a
            directory (naming it and where it came from).
    """
    user: list[tuple[Path, str]] = [(Path(p).expanduser(), "$KGZOO_CONFIG_DIR")
                                    for p in os.environ.get("KGZOO_CONFIG_DIR", "").split(os.pathsep) if p]
    user += [(Path(p).expanduser(), "extra config dirs") for p in extra]
    for p, source in user:
        if not p.is_dir():
            raise FileNotFoundError(f"zoo config folder {str(p)!r} (from {source}) is not a directory")
    dirs = [packaged_config_dir(), *(p for p, _ in user)]
    return [p for i, p in enumerate(dirs) if p not in dirs[i + 1:]]


def shown_path(path: PathLike) -> str:
    """``path`` as a generated file names it (a config comment, the leaderboard's header): relative
    to the working directory when inside it, else as given; ``/``-separated."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()

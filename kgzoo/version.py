"""kgzoo's version, in a module of its own so that every layer (models included) may read it
without importing the public API (``kgzoo/__init__.py`` re-exports it), and
:func:`git_revision`, the commit of the checkout kgzoo runs from (result rows record it)."""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from .paths import checkout_dir

__version__ = "0.1.0"

#: the folders whose uncommitted changes make a checkout "dirty" for a result: the code only. The zoo
#: configs are pinned per row by its ``config_sha``, and ``kgzoo tune`` writes their ``tuned:``
#: sections before the converged runs, so counting them would mark every tuned row dirty.
GIT_TRACKED_FOR_RESULTS = ("kgzoo",)


def git_revision() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout this kgzoo was imported from
    (:func:`kgzoo.paths.checkout_dir`): :func:`checkout_revision` of it, computed once per
    process; ``(None, None)`` for an installed kgzoo."""
    root = checkout_dir()
    return (None, None) if root is None else checkout_revision(root)


@functools.cache
def checkout_revision(root: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout whose top level is ``root``, computed once per
    process and root (two ``git`` calls, then cached).

    ``commit`` is the 40-hex ``HEAD``; ``dirty`` is whether ``git status --porcelain`` lists a
    change (untracked files included) under :data:`GIT_TRACKED_FOR_RESULTS`. ``(None, None)``
    where ``root`` has no ``.git`` (folder, or file for a worktree) beside it (an installed
    wheel: the package sits in ``site-packages``), where ``git`` is missing or fails, or
    where the repository has no commit yet: never an error, a row is written anyway.
    """
    if not (root / ".git").exists():
        return None, None

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    try:
        commit = git("rev-parse", "--verify", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--", *GIT_TRACKED_FOR_RESULTS).strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty

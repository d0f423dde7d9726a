"""``--import MODULE_OR_FILE`` and the ``kgzoo.plugins`` entry points of every command: the user's
models, datasets and fusion layers imported, and a word for each new model without a zoo config
(:func:`announce_configs`). Imported by :func:`kgzoo.cli.main` only where there is a plugin (the
built-in models come first, and Lightning with them)."""
from __future__ import annotations

from typing import Callable

from ..config import DEFAULT_MAX_EPOCHS, ZooConfig
from ..dist import is_rank_zero
from ..paths import config_dirs
from ..registry import MODELS, load_plugins


def load_and_announce(imports: list[str], log: Callable[[str], None]) -> None:
    """Import ``imports`` and the entry points (:func:`kgzoo.registry.load_plugins`), then
    :func:`announce_configs` of the models they registered.

    Raises:
        FileNotFoundError, ImportError, ValueError: as :func:`kgzoo.registry.load_plugins`.
    """
    before = set(MODELS.list())
    load_plugins(imports)
    announce_configs(sorted(set(MODELS.list()) - before), log)


def announce_configs(names: list[str], log: Callable[[str], None]) -> None:
    """Say, once per model, which registered models of ``names`` have no zoo config of their own:
    those using their parent class's (``"X has no zoo config; using Y's"``), and those with none
    at all (no ``<name>/`` folder in any config folder, :func:`kgzoo.paths.config_dirs`), which
    run with their constructor's defaults, untuned, on the default schedule: a user's model whose
    ``--config-dir`` was left off after ``kgzoo tune`` ran so without a word. Global rank 0 only
    (:func:`kgzoo.dist.is_rank_zero`): Lightning's DDP launcher starts each further rank as this
    very command again."""
    if not is_rank_zero():
        return
    for name in names:
        cfg = ZooConfig.load(name)
        if cfg.inherited_from:
            log(f"{name} has no zoo config; using {cfg.inherited_from}'s")
        elif cfg.path is None and not any((d / name).is_dir() for d in config_dirs()):
            log(f"{name} has no zoo config (no {name}/ in any config folder): it runs with its constructor's "
                f"defaults, untuned, up to {DEFAULT_MAX_EPOCHS} epochs; give --config-dir DIR holding "
                f"{name}/default.yaml (README, 'A new model against the baselines')")

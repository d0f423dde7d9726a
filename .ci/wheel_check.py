"""CI, after the wheel install: the rows of ``kgzoo bench --models pop bpr`` were trained with the
zoo configs shipped inside the wheel (``kgzoo/zoo_configs/``), not with constructor defaults, and
the published rows ship with it (``kgzoo/published/``).

Run with the wheel environment's python, from outside the checkout:
``python wheel_check.py RESULTS.jsonl``. Exits non-zero, naming the failed check.
"""
from __future__ import annotations

import sys
from pathlib import Path

import kgzoo
from kgzoo.bench.cells import Cell, cell_config_sha
from kgzoo.bench.rows import read_rows
from kgzoo.config import ZooConfig
from kgzoo.paths import packaged_config_dir, published_results_dir

package = Path(kgzoo.__file__).resolve().parent
rows = read_rows(sys.argv[1])
checks = [(f"kgzoo is imported from the installed wheel ({package}), not from a checkout",
           "site-packages" in package.parts),
          (f"the packaged configs are the wheel's package data ({packaged_config_dir()})",
           packaged_config_dir() == package / "zoo_configs"),
          ("one row each for pop and bpr", sorted(r.model for r in rows) == ["bpr", "pop"]),
          (f"the published rows ship with the wheel ({published_results_dir()})",
           published_results_dir() == package / "published"
           and len(read_rows(package / "published" / "converged.jsonl")) > 100)]
for row in rows:
    cfg = ZooConfig.load(row.model, row.dataset)
    name = f"{row.model} on {row.dataset}"
    sha = cell_config_sha(Cell(row.model, row.dataset, row.seed, row.kg_ablation, row.variant), row.schedule)
    checks += [(f"{name}: its zoo config {cfg.path} is in the wheel and not empty",
                cfg.path is not None and cfg.path.is_relative_to(package / "zoo_configs") and bool(cfg.train)),
               (f"{name}: the row's config_sha is that config's ({sha})", row.config_sha == sha),
               (f"{name}: the row's hyper-parameters hold the config's model section {cfg.model}",
                all(row.hparams.get(k) == v for k, v in cfg.model.items())),
               (f"{name}: the quick schedule's epoch cap {row.schedule['max_epochs']} is the config's bench schedule",
                row.schedule["kind"] == "quick" and row.schedule["max_epochs"] == cfg.schedule(quick=True).max_epochs)]
for text, ok in checks:
    print(f"  {'ok  ' if ok else 'FAIL'} {text}")
sys.exit(0 if all(ok for _, ok in checks) else 1)

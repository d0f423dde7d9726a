"""Filtered link prediction of the KG-embedding models on a dataset's KG; writes link_prediction.md.

    python benchmarks/scripts/link_prediction.py [--dataset ml-100k-kg] [--models transe transr]
                                         [--epochs 20] [--patience 3] [--seed 0]

Each model goes through :func:`kgzoo.bench.experiment.run_experiment` (its zoo config, the seeded 90/5/5
triple split of :class:`kgzoo.data.link.KGLinkDataModule`, early stopping on valid MRR,
the best checkpoint tested on every test triple, head and tail queries, filtered against
train+valid+test, realistic tie-averaged ranks). The table goes to ``benchmarks/studies/link_prediction.md``;
``--rows FILE`` also appends the result rows (:class:`kgzoo.bench.rows.ResultRow`, JSON lines) to ``FILE``
(``benchmarks/results/link_prediction.jsonl`` holds the committed ones); checkpoints go to ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k-kg")
    ap.add_argument("--models", nargs="+", default=["transe", "transr"])
    ap.add_argument("--epochs", type=int, nargs="+", default=[20],
                    help="max epochs, one value for all models or one per model")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE.parent / "studies" / "link_prediction.md"))
    ap.add_argument("--rows", default=None, help="append the result rows (JSON lines) to this file")
    ap.add_argument("--runs", default=None,
                    help="checkpoints and logs (default: link_prediction/ in kgzoo.paths.cache_dir('runs'))")
    args = ap.parse_args(argv)
    os.environ.setdefault("KGZOO_DATA_DIR", str(HERE.parents[2] / "shared" / "data"))
    from kgzoo.bench.experiment import run_experiment
    from kgzoo.bench.rows import append_row
    from kgzoo.paths import cache_dir

    runs = args.runs or cache_dir("runs") / "link_prediction"

    epochs = args.epochs * len(args.models) if len(args.epochs) == 1 else args.epochs
    if len(epochs) != len(args.models):
        ap.error("--epochs takes one value or one per model")
    rows = []
    for model, ep in zip(args.models, epochs):
        row = run_experiment(model, args.dataset, seed=args.seed, max_epochs=ep, patience=args.patience,
                             out_dir=runs, progress=False)
        rows.append(row)
        if args.rows:
            append_row(args.rows, row)
        m = row.metrics
        print(f"{model}: MRR {m['test/mrr']:.4f} Hits@10 {m['test/hits@10']:.4f} ({row.cell_seconds:.0f} s)",
              flush=True)

    cmd = "python benchmarks/scripts/link_prediction.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Link prediction on the {args.dataset} KG",
        "",
        f"Command: `{cmd.strip()}` (seed {args.seed}; {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, CPU, torch {rows[0].versions['torch'] if rows else '?'}).",
        "",
        "Protocol: the dataset's KG triples split 90/5/5 with the seed (valid/test triples whose entity or",
        "relation never occurs in train are moved to train); every test triple gives a tail query",
        "`(h, r, ?)` and a head query `(?, r, t)` ranked over all entities, filtered against all known",
        "triples (train + valid + test), realistic tie-averaged ranks (PyKEEN's convention;",
        "`kgzoo.metrics.link`). Early stopping on the MRR of 1,000 seeded valid triples.",
        "Each model uses its zoo config (`zoo_configs/<model>/`), Adam, margin ranking loss.",
        "",
        "| model | test MRR | Hits@1 | Hits@3 | Hits@10 | mean rank | epochs (best) | s/epoch | eval s | wall s | params |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r.metrics
        lines.append(f"| {r.model} | {m['test/mrr']:.4f} | {m['test/hits@1']:.4f} | {m['test/hits@3']:.4f} | "
                     f"{m['test/hits@10']:.4f} | {m['test/mean_rank']:.0f} | {r.epochs} ({r.best_epoch}) | "
                     f"{r.seconds_per_epoch:.1f} | {r.eval_seconds:.1f} | {r.cell_seconds:.0f} | "
                     f"{r.params:,} |")
    n_ent = None
    try:
        import kgzoo

        dm = kgzoo.create_datamodule(args.dataset)
        dm.setup()
        n_ent = dm.n_entities
    except Exception:  # noqa: BLE001 - the table is written anyway
        pass
    if n_ent:
        rnd = sum(1 / k for k in range(1, n_ent + 1)) / n_ent
        lines += ["", f"Random ranking over {n_ent:,} entities: MRR {rnd:.5f}, Hits@10 {10 / n_ent:.5f}."]
    lines += ["", "Timings are wall-clock on a shared machine and only indicative; the paper numbers of",
              "TransE/TransR are on FB15k/WN18 and not comparable with this KG."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

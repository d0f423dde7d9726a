"""TransR from a uniform start against TransR from TransE (its paper's start), same split, seed and epochs.

    python benchmarks/scripts/transr_init.py [--dataset ml-100k-kg] [--epochs 10] [--init-epochs 50] [--seed 0]

Lin et al. (AAAI 2015, section 4.2) initialise TransR's entity and relation embeddings with a
trained TransE "to avoid overfitting". kgzoo's TransR does so with ``init="transe"`` (the TransE is
trained on the triple split's train part only, :class:`kgzoo.pretrain.kg_vectors.KGVectors`);
``init="uniform"`` starts from TransE's uniform init. Both run through
:func:`kgzoo.bench.experiment.run_experiment` with TransR's zoo config, a fixed number of epochs
(no early stopping: ``--epochs`` each) and the best valid checkpoint tested (filtered MRR and
Hits@10 on the test triples). Prints the valid MRR of every epoch and the test metrics; the
study ``benchmarks/studies/link_prediction.md`` quotes the output.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from lightning.pytorch.callbacks import Callback


class ValidCurve(Callback):
    """The monitored validation value of every epoch."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics["valid/mrr"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-100k-kg")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--init-epochs", type=int, default=50, help="TransE epochs of the transe start")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inits", nargs="*", default=["uniform", "transe"])
    ap.add_argument("--transe", action="store_true", help="also test the TransE of the transe start itself")
    args = ap.parse_args()
    from kgzoo.bench.experiment import run_experiment

    if args.transe:
        import kgzoo
        from kgzoo.api import pretrain_extras
        from kgzoo.hub import evaluate

        link = kgzoo.api.create_datamodule_for(kgzoo.registry.MODELS.get("transr"), kgzoo.create_datamodule(args.dataset))
        transr = kgzoo.create_model("transr", link, init_epochs=args.init_epochs)  # reads (or trains) the cached TransE
        vectors = pretrain_extras(transr, link)["kg_vectors"]
        transe = kgzoo.create_model("transe", link, embedding_dim=int(transr.entity.weight.shape[1]))
        tables = vectors.load_tables()  # the cached TransE of the transe start (trained if missing)
        transe.entity.weight.data.copy_(tables["entity"])
        transe.relation.weight.data.copy_(tables["relation"])
        m = evaluate(transe, link)
        print(f"TransE of the transe start ({args.init_epochs} epochs, train triples): test MRR {m['test/mrr']:.4f}, "
              f"Hits@10 {m['test/hits@10']:.4f}", flush=True)

    for init in args.inits:
        curve = ValidCurve()
        t0 = time.perf_counter()
        row = run_experiment("transr", args.dataset, seed=args.seed, max_epochs=args.epochs, patience=args.epochs,
                             model_overrides={"init": init, "init_epochs": args.init_epochs},
                             out_dir=tempfile.mkdtemp(prefix="transr-init-"), progress=False,
                             callbacks=lambda net: [curve])
        m = row.metrics
        print(f"init={init}: valid MRR by epoch {[round(v, 4) for v in curve.values]}; best epoch {row.best_epoch}; "
              f"test MRR {m['test/mrr']:.4f}, Hits@10 {m['test/hits@10']:.4f}; {time.perf_counter() - t0:.0f} s "
              f"(TransE pre-training included for init=transe)", flush=True)


if __name__ == "__main__":
    main()

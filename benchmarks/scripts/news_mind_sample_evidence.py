"""Why the news models score AUC about 0.5 on mind-sample: coverage of the test impressions and
the metrics of Pop and content models on all test impressions vs. the candidates that have text
(``benchmarks/studies/news_mind_sample.md``).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/news_mind_sample_evidence.py \
        [--train-epochs 2] [--models pop news-plm-mean nrms-plm]

Prints one JSON object: coverage counts of the test (and valid) candidates, and for each model
its MIND metrics (:class:`kgzoo.metrics.ImpressionMetrics`) on four views of the test split:
``all`` (every candidate), ``text_candidates`` (each impression restricted to its candidates with
a news.tsv text; an impression keeps an AUC only with a click and a non-click among them),
``all_text`` (only the impressions whose candidates all have text) and ``seen_candidates`` (each
impression restricted to its candidates seen in a train impression). A trained model (NRMS-PLM)
trains ``--train-epochs`` epochs with the zoo config, no early stopping, 1 seed: evidence, not a
result row.
"""
from __future__ import annotations

import argparse
import json
import warnings

import lightning as L
import torch

import kgzoo
from kgzoo.metrics import ImpressionMetrics, IMPRESSION_KS


def seen_in_train(dm) -> torch.Tensor:
    """BoolTensor ``[I]``: news shown or clicked in a train impression (a candidate of one, or in
    its history)."""
    log = dm.log
    train = dm.split["train"]
    seen = torch.zeros(dm.data.n_items, dtype=torch.bool)
    for ptr, vals in ((log.candidate_indptr, log.candidates), (log.history_indptr, log.history)):
        rows = torch.repeat_interleave(torch.arange(log.n_impressions), ptr.diff())
        in_train = torch.zeros(log.n_impressions, dtype=torch.bool)
        in_train[train] = True
        seen[vals[in_train[rows]]] = True
    return seen


def coverage(dm, seen: torch.Tensor) -> dict:
    """Shares of the test and valid candidates (repeats counted) with text, seen in train
    (:func:`seen_in_train`), linked to the KG."""
    log, data = dm.log, dm.data
    has_text = torch.tensor([bool(t) for t in data.item_text])
    linked = torch.zeros(data.n_items, dtype=torch.bool)
    t = data.triples
    linked[t[:, 0][t[:, 0] < data.n_items]] = True
    out = {}
    for stage in ("valid", "test"):
        rows = torch.repeat_interleave(torch.arange(log.n_impressions), log.candidate_indptr.diff())
        part = torch.zeros(log.n_impressions, dtype=torch.bool)
        part[dm.split[stage]] = True
        cand, lab = log.candidates[part[rows]], log.label[part[rows]]
        clicked = cand[lab == 1]
        out[stage] = {
            "impressions": int(part.sum()), "candidates": int(cand.numel()), "clicks": int(clicked.numel()),
            "with_text": round(float(has_text[cand].float().mean()), 4),
            "clicked_with_text": round(float(has_text[clicked].float().mean()), 4),
            "seen_in_train": round(float(seen[cand].float().mean()), 4),
            "clicked_seen_in_train": round(float(seen[clicked].float().mean()), 4),
            "linked_to_kg": round(float(linked[cand].float().mean()), 4),
        }
    return out


@torch.no_grad()
def views(model, dm, seen: torch.Tensor) -> dict:
    """MIND's metrics of ``model`` on the test impressions: all, text candidates, all-text
    impressions, candidates seen in train (``seen`` BoolTensor ``[I]``)."""
    has_text = torch.tensor([bool(t) for t in dm.data.item_text])
    metrics = {k: ImpressionMetrics(IMPRESSION_KS) for k in ("all", "text_candidates", "all_text", "seen_candidates")}
    model.eval()
    model.prepare_scoring()
    try:
        for batch in dm.test_dataloader():
            s = model.impression_scores(batch).float()
            m, y = batch["candidate_mask"], batch["label"]
            text = has_text[batch["candidates"]] & m
            full = (text == m).all(1)
            metrics["all"].update(s, y, m)
            metrics["text_candidates"].update(s, y, text)
            metrics["seen_candidates"].update(s, y, seen[batch["candidates"]] & m)
            if bool(full.any()):
                metrics["all_text"].update(s[full], y[full], m[full])
    finally:
        model.end_scoring()
    out = {}
    for k, met in metrics.items():
        vals = {n: round(float(v), 4) for n, v in met.compute().items()}
        out[k] = {**vals, "auc_impressions": int(met.auc_count), "ranked_impressions": int(met.ranked_count)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["pop", "news-plm-mean", "nrms-plm"])
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    dm = kgzoo.create_datamodule("mind-sample", protocol={"task": "impression", "split": "temporal"})
    dm.setup()
    seen = seen_in_train(dm)
    out = {"coverage": coverage(dm, seen), "models": {}}
    print(json.dumps(out["coverage"]), flush=True)
    for name in args.models:
        L.seed_everything(args.seed, verbose=False)
        model = kgzoo.create_model(name, dm)
        trainable = any(p.requires_grad for p in model.parameters())
        if trainable:
            t = L.Trainer(accelerator="cpu", max_epochs=args.train_epochs, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                          num_sanity_val_steps=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t.fit(model, datamodule=dm)
        out["models"][name] = {"trained_epochs": args.train_epochs if trainable else 0, **views(model, dm, seen)}
        print(json.dumps({name: out["models"][name]}), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""DKN's and NRMS's news encoders before and after their fast paths, side by side in one process
(``benchmarks/studies/news_speed.md``): same model, same weights, same batches.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/news_encoder_speed.py \
        [--pairs dkn:dkn-news nrms:dkn-news dkn:mind-sample nrms:mind-sample] [--steps 4] [--rounds 2]

"before" is the padded formulation (``tests/unit/models/test_news_encoders.py``: DKN's KCNN as
``nn.Conv2d`` over ``[N, 3, title_length, d]``, NRMS's word encoder over ``title_length`` pieces
for every news), "after" the model's own ``text_vectors`` (one matrix product over the real word
pieces; buckets of similar length). Both encode each distinct news of a batch once and every news
once per evaluation pass (``NewsRecommender``), so the ratio is the encoders' alone.

Per pair, ``--rounds`` times, alternating before/after (the machine is shared: interleaving spreads
the other processes' load over both): ``--steps`` training steps on the same first batches
(forward, backward, Adam) and one evaluation pass over the valid split (``prepare_scoring``, every
batch's scores), in process CPU seconds (``time.process_time``). Also the max abs difference of the
two encoders' news vectors on the first batch's news (eval mode).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import torch

import kgzoo
from kgzoo.api import create_datamodule_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from news_speed import base_datamodule  # noqa: E402

from tests.unit.models.test_news_encoders import padded_kcnn, padded_nrms_words  # noqa: E402

REFERENCE = {"dkn": padded_kcnn, "nrms": padded_nrms_words}


def use(model, variant: str) -> None:
    """Point ``model.text_vectors`` at the padded reference (``before``) or the model's own (``after``)."""
    model.__dict__.pop("text_vectors", None)
    if variant == "before":
        ref = REFERENCE[type(model).__name__.lower()]
        model.text_vectors = lambda items: ref(model, items)


def train_cpu(model, batches, opt) -> float:
    model.train()
    t = time.process_time()
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        opt.step()
    return time.process_time() - t


def eval_cpu(model, dm) -> float:
    model.eval()
    t = time.process_time()
    with torch.no_grad():
        model.prepare_scoring()
        for batch in dm.val_dataloader():
            model.impression_scores(batch) if "candidates" in batch else model.ctr_scores(batch)
        model.end_scoring()
    return time.process_time() - t


def build(name: str, dataset: str, steps: int) -> tuple:
    """``(model, DataModule, training batches per epoch, the first steps batches)`` as a bench cell builds them."""
    torch.manual_seed(0)
    base = base_datamodule(name, dataset)
    model = kgzoo.create_model(name, base)
    dm = create_datamodule_for(model, base)
    dm.setup()
    loader = dm.train_dataloader()
    it = iter(loader)
    return model, dm, len(loader), [next(it) for _ in range(steps)]


def measure(name: str, dataset: str, steps: int, rounds: int) -> dict:
    model, dm, _, batches = build(name, dataset, steps)
    b = batches[0]
    ids = torch.cat([b["history"].flatten(), (b["candidates"] if "candidates" in b else b["item"]).flatten()])
    news = torch.unique(ids)
    news = news[model.has_text[news]]
    model.eval()
    with torch.no_grad():
        use(model, "before")
        ref = model.text_vectors(news)
        use(model, "after")
        diff = (model.text_vectors(news) - ref).abs().max().item()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return {"model": name, "dataset": dataset, "distinct_news_with_text_batch0": int(news.numel()),
            "max_abs_diff": diff, "steps": steps, "rounds": rounds,
            **side_by_side(model, dm, batches, opt, use, ("before", "after"), rounds)}


def side_by_side(model, dm, batches, opt, use, variants: tuple[str, str], rounds: int) -> dict:
    """``rounds`` times, alternating the order of the two ``variants`` (``use(model, variant)``
    switches): the training steps of ``batches`` and one evaluation pass, process CPU seconds;
    the means per variant and the speed-ups of the second over the first. Leaves the second in use."""
    cpu = {v: {"train": [], "eval": []} for v in variants}
    for r in range(rounds):
        for variant in (variants if r % 2 == 0 else variants[::-1]):
            use(model, variant)
            cpu[variant]["train"].append(train_cpu(model, batches, opt) / len(batches))
            cpu[variant]["eval"].append(eval_cpu(model, dm))
    use(model, variants[1])
    mean = {v: {k: sum(x) / len(x) for k, x in d.items()} for v, d in cpu.items()}
    old, new = (mean[v] for v in variants)
    return {"train_cpu_s_per_step": {v: round(m["train"], 3) for v, m in mean.items()},
            "eval_cpu_s": {v: round(m["eval"], 2) for v, m in mean.items()},
            "speedup_train": round(old["train"] / new["train"], 2),
            "speedup_eval": round(old["eval"] / new["eval"], 2)}


def cli(doc: str, measure, pairs: list[str]) -> None:
    """The command line of the side-by-side scripts: ``--pairs MODEL:DATASET ... --steps --rounds``,
    one JSON line per pair (``measure(name, dataset, steps, rounds)``)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--pairs", nargs="+", default=pairs, help="MODEL:DATASET")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(json.dumps({"omp_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads()}))
    for pair in args.pairs:
        name, _, dataset = pair.partition(":")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(json.dumps(measure(name, dataset, args.steps, args.rounds)), flush=True)


def main() -> None:
    cli(__doc__, measure, ["dkn:dkn-news", "nrms:dkn-news", "dkn:mind-sample", "nrms:mind-sample"])


if __name__ == "__main__":
    main()

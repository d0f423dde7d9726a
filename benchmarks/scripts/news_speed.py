"""One training epoch and one evaluation pass of each news model, frozen and LoRA PLM, on
mind-sample (impressions) and dkn-news (CTR rows with the users' train clicks), one thread
(``benchmarks/studies/news_speed.md``).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/news_speed.py \
        [--datasets mind-sample dkn-news] [--models nrms nrms-plm nrms-plm:lora ...] [--max-steps N]

A model name ``NAME:lora`` is NAME with ``text_mode=lora``. Each (model, dataset) is built with its
zoo config (:func:`kgzoo.create_model`, which pre-trains and caches what it asks for: TransE
vectors, frozen PLM vectors; that build is timed apart as ``build``) on the DataModule a bench cell
uses (the dataset's protocol for the model, the config's ``data`` section: batch sizes, history), then:

- ``train``: one epoch of the DataModule's training batches (forward, backward, Adam step), or its
  first ``--max-steps`` batches (then ``epoch_projected`` = per-step time x batches per epoch);
- ``eval``: one pass over the valid split in eval mode (``prepare_scoring``, the scores of every
  batch, ``end_scoring``), as Lightning's validation runs it, without the metrics.

Per phase: process CPU time (``time.process_time``, this process's threads) and wall time. The
machine is shared: wall time depends on the other processes, CPU time much less; compare ratios
within one run. ``plm_texts`` counts the texts the PLM encoded in each phase (a wrapper around
:meth:`kgzoo.models.layers.text_encoder.TextEncoder.forward`): 0 in frozen mode after the build,
which encodes each news text once (or reads the on-disk cache).
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch

import kgzoo
from kgzoo.api import create_datamodule_for
from kgzoo.protocols import default_protocol
from kgzoo.config import ZooConfig
from kgzoo.models.layers.text_encoder import TextEncoder

PLM_TEXTS = [0]
_forward = TextEncoder.forward


def _counting_forward(self, input_ids, attention_mask):
    PLM_TEXTS[0] += int(input_ids.shape[0])
    return _forward(self, input_ids, attention_mask)


TextEncoder.forward = _counting_forward


class Clock:
    """Process CPU seconds, wall seconds and PLM texts encoded between enter and exit."""

    def __enter__(self) -> "Clock":
        self.cpu, self.wall, self.texts = time.process_time(), time.perf_counter(), PLM_TEXTS[0]
        return self

    def __exit__(self, *exc) -> None:
        self.cpu = time.process_time() - self.cpu
        self.wall = time.perf_counter() - self.wall
        self.texts = PLM_TEXTS[0] - self.texts

    def row(self) -> dict:
        return {"cpu_s": round(self.cpu, 2), "wall_s": round(self.wall, 2), "plm_texts": self.texts}


def base_datamodule(model: str, dataset: str):
    """The DataModule a bench cell builds: the dataset's protocol for the model, the zoo config's ``data``."""
    return kgzoo.create_datamodule(dataset, protocol=default_protocol(dataset, model), **ZooConfig.load(model, dataset).data)


def measure(name: str, dataset: str, max_steps: int | None) -> dict:
    model_name, _, mode = name.partition(":")
    overrides = {"text_mode": mode} if mode else {}
    torch.manual_seed(0)
    with Clock() as build:
        base = base_datamodule(model_name, dataset)
        model = kgzoo.create_model(model_name, base, **overrides)
        dm = create_datamodule_for(model, base)
        dm.setup()
    out = {"model": name, "dataset": dataset, "task": model.task, "build": build.row(),
           "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    loader = dm.train_dataloader()
    n_batches = len(loader) if hasattr(loader, "__len__") else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    steps = 0
    if trainable:
        opt = torch.optim.Adam(trainable, lr=1e-4)
        model.train()
        with Clock() as train:
            for batch in loader:
                opt.zero_grad(set_to_none=True)
                model.loss(batch).backward()
                opt.step()
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
        out["train"] = {**train.row(), "steps": steps, "batches_per_epoch": n_batches}
        if n_batches and steps < n_batches:
            out["train"]["epoch_projected_cpu_s"] = round(train.cpu / steps * n_batches, 1)
            out["train"]["epoch_projected_wall_s"] = round(train.wall / steps * n_batches, 1)
    model.eval()
    with Clock() as ev, torch.no_grad():
        model.prepare_scoring()
        rows = 0
        for batch in dm.val_dataloader():
            s = model.impression_scores(batch) if "candidates" in batch else model.ctr_scores(batch)
            rows += s.shape[0]
        model.end_scoring()
    out["eval"] = {**ev.row(), "rows": rows}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mind-sample", "dkn-news"])
    p.add_argument("--models", nargs="+", default=["pop", "news-plm-mean", "nrms", "dkn", "nrms-plm", "kgplm-news",
                                                   "nrms-plm:lora", "kgplm-news:lora"])
    p.add_argument("--max-steps", type=int, default=None, help="train at most this many batches (LoRA: a projection)")
    p.add_argument("--lora-steps", type=int, default=None, help="--max-steps for the :lora models only")
    args = p.parse_args()
    print(json.dumps({"omp_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads()}))
    for dataset in args.datasets:
        for name in args.models:
            steps = args.lora_steps if name.endswith(":lora") and args.lora_steps else args.max_steps
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                print(json.dumps(measure(name, dataset, steps)), flush=True)


if __name__ == "__main__":
    main()

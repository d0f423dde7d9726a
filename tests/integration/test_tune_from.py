"""``kgzoo tune --from`` end to end on real data (issue 16, part 3): a dataset takes the values tuned
on the domain's small set, ``kgzoo bench --full`` runs them, and the row and the leaderboard say so."""
from __future__ import annotations

from kgzoo.bench import leaderboard as lb
from kgzoo.bench.rows import read_rows
from kgzoo.cli import main

SMALL = """model: {embedding_dim: 16, lr: 1.0e-3, reg_weight: 1.0e-4}
tuned:
  params: {lr: 3.0e-3, reg_weight: 2.0e-3}
  best_valid: {ndcg@10: 0.25}
  trials: 10
  budget: {trials: 10, max_epochs: 300, patience: 10}
  default: {state: COMPLETE, value: 0.2, trial: 0, chosen: false}
  study: bpr/ml-100k-kg/test
"""


def test_from_the_small_set_then_a_converged_bench_on_lastfm_social(tmp_path, monkeypatch, capsys, data_dir):
    configs = tmp_path / "configs"
    (configs / "bpr").mkdir(parents=True)
    (configs / "bpr" / "ml-100k-kg.yaml").write_text(SMALL)
    target = configs / "bpr" / "lastfm-social.yaml"
    target.write_text("# BPR on lastfm-social for the test\nmodel: {embedding_dim: 16, lr: 1.0e-3}\n"
                      "data: {batch_size: 8192, eval_batch_size: 2048}\ntrain: {max_epochs: 1, patience: 10}\n")
    (configs / "lightgcn").mkdir()
    (configs / "lightgcn" / "ml-100k-kg.yaml").write_text("model: {embedding_dim: 16}\n")  # nothing tuned there
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(configs))
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))

    assert main(["tune", "bpr", "lastfm-social", "--from", "ml-100k-kg", "--write-config", str(configs)]) == 0
    text = target.read_text()
    assert "# BPR on lastfm-social for the test" in text and "from: ml-100k-kg" in text  # the file kept, record added
    assert main(["bench", "--full", "--models", "bpr", "--datasets", "lastfm-social", "--seeds", "0",
                 "--results", str(tmp_path / "results"), "--name", "from", "--runs", str(tmp_path / "runs")]) == 0
    (row,) = read_rows(tmp_path / "results" / "from.jsonl")
    assert row.status == "ok" and row.schedule["kind"] == "converged" and row.epochs == 1
    assert row.hparams["lr"] == 3.0e-3 and row.hparams["reg_weight"] == 2.0e-3 and row.hparams["embedding_dim"] == 16
    assert row.tuning["dataset"] == "ml-100k-kg" and row.tuning["trials"] == 10
    assert lb.tuned_text([row]) == "tuned on ml-100k-kg (10 trials + defaults)"

    # a small set without a tuned: record of its own is refused (exit 2, one line naming the
    # file and the command to run first) before anything is written
    capsys.readouterr()
    assert main(["tune", "lightgcn", "lastfm-social", "--from", "ml-100k-kg", "--write-config", str(configs)]) == 2
    err = capsys.readouterr().err
    assert "ml-100k-kg.yaml has no tuned: record of its own" in err and "kgzoo tune lightgcn ml-100k-kg" in err
    assert not (configs / "lightgcn" / "lastfm-social.yaml").exists()

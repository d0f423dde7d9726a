"""kgzoo.paths: argument > KGZOO_* > XDG, for data, caches and config folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kgzoo.paths import CACHE_KINDS, cache_dir, config_dirs, data_dir, packaged_config_dir


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No KGZOO_* variables, XDG cache in tmp_path/xdg, home in tmp_path/home."""
    for var in ("KGZOO_DATA_DIR", "KGZOO_HOME", "KGZOO_CONFIG_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_data_dir_precedence(clean_env, monkeypatch):
    assert data_dir() == clean_env / "home" / ".cache" / "kgzoo" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg"))
    assert data_dir() == clean_env / "xdg" / "kgzoo" / "data"
    monkeypatch.setenv("KGZOO_DATA_DIR", str(clean_env / "env"))
    assert data_dir() == clean_env / "env"
    assert data_dir(clean_env / "arg") == clean_env / "arg"
    assert data_dir("~/d") == clean_env / "home" / "d"
    monkeypatch.setenv("KGZOO_DATA_DIR", "")  # empty counts as unset
    assert data_dir() == clean_env / "xdg" / "kgzoo" / "data"


@pytest.mark.parametrize("kind", CACHE_KINDS)
def test_cache_dir_precedence(clean_env, monkeypatch, kind):
    assert cache_dir(kind) == clean_env / "home" / ".cache" / "kgzoo" / kind
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg"))
    assert cache_dir(kind) == clean_env / "xdg" / "kgzoo" / kind
    monkeypatch.setenv("KGZOO_HOME", str(clean_env / "kh"))
    assert cache_dir(kind) == clean_env / "kh" / kind
    assert cache_dir(kind, clean_env / "arg") == clean_env / "arg"
    assert not (clean_env / "kh").exists()  # nothing is created


def test_cache_dir_unknown_kind():
    with pytest.raises(ValueError, match="unknown cache kind 'weights'.*hub, kge, text, runs"):
        cache_dir("weights")


def test_config_dirs_order(clean_env, monkeypatch):
    a, b, c = (clean_env / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    assert config_dirs() == [packaged_config_dir()]
    assert (packaged_config_dir() / "lightgcn" / "default.yaml").is_file()
    monkeypatch.setenv("KGZOO_CONFIG_DIR", os.pathsep.join([str(a), "", str(b)]))
    assert config_dirs() == [packaged_config_dir(), a, b]
    assert config_dirs([c, str(a)]) == [packaged_config_dir(), b, c, a]  # a repeat keeps its last place


def test_config_dirs_missing_folder(clean_env, monkeypatch):
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(clean_env / "nope"))
    with pytest.raises(FileNotFoundError, match=r"nope.*\$KGZOO_CONFIG_DIR"):
        config_dirs()
    monkeypatch.delenv("KGZOO_CONFIG_DIR")
    with pytest.raises(FileNotFoundError, match="nope.*extra"):
        config_dirs([Path(clean_env / "nope")])


def test_packaged_config_dir_of_a_checkout_and_of_a_wheel(tmp_path, monkeypatch):
    import kgzoo.paths as paths

    # a checkout (editable install or PYTHONPATH): zoo_configs/ beside the package
    assert packaged_config_dir() == Path(paths.__file__).resolve().parent.parent / "zoo_configs"
    checkout = tmp_path / "checkout"
    (checkout / "kgzoo").mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(checkout / "kgzoo" / "paths.py"))
    assert packaged_config_dir() == checkout / "zoo_configs" and paths.checkout_dir() == checkout
    # a wheel: the build maps zoo_configs/ to the package data kgzoo/zoo_configs/
    (checkout / "kgzoo" / "zoo_configs").mkdir()
    assert packaged_config_dir() == checkout / "kgzoo" / "zoo_configs" and paths.checkout_dir() is None


def test_published_rows_of_a_checkout_and_of_a_wheel(tmp_path, monkeypatch):
    """The published rows, for reading: a checkout's benchmarks/results; a wheel's kgzoo/published
    (the build's copy of them); none where neither is there."""
    import kgzoo.paths as paths

    assert paths.published_results_dir() == paths.committed_results_dir()
    wheel = tmp_path / "site-packages"
    (wheel / "kgzoo" / "zoo_configs").mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(wheel / "kgzoo" / "paths.py"))
    assert paths.committed_results_dir() is None and paths.published_results_dir() is None
    (wheel / "kgzoo" / "published").mkdir()
    assert paths.published_results_dir() == wheel / "kgzoo" / "published" and paths.committed_results_dir() is None


def test_committed_rows_and_leaderboard_whatever_the_working_directory(tmp_path, monkeypatch):
    """`kgzoo bench --reference` and `--leaderboard-dir` defaulted to `benchmarks/...` relative to the
    working directory, while `kgzoo tune --results` took the checkout's: from another folder, bench
    found no committed rows and `--leaderboard-only` wrote a `benchmarks/leaderboard/` there. Now
    every default is the checkout's; a leaderboard of one's own rows goes beside them (never over
    the committed one); a path typed stays relative to the working directory."""
    import kgzoo.paths as paths
    from kgzoo.bench.cli import leaderboard_dir
    from kgzoo.bench.tune import default_results_dir

    repo = Path(paths.__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    assert paths.committed_results_dir() == repo / "benchmarks" / "results" == default_results_dir()
    assert paths.committed_leaderboard_dir() == repo / "benchmarks" / "leaderboard"
    assert leaderboard_dir(paths.committed_results_dir()) == repo / "benchmarks" / "leaderboard"
    assert leaderboard_dir("mine") == Path("mine") / "leaderboard"  # beside one's own rows
    assert leaderboard_dir("mine/bench.jsonl") == Path("mine") / "leaderboard"
    assert leaderboard_dir("mine", "lb") == Path("lb")  # as typed, relative to the working directory
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)  # a folder of that name here is not the checkout's
    assert leaderboard_dir("benchmarks/results") == Path("benchmarks/results/leaderboard")
    checkout = tmp_path / "wheel"  # an installed kgzoo has no committed rows
    (checkout / "kgzoo" / "zoo_configs").mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(checkout / "kgzoo" / "paths.py"))
    assert paths.committed_results_dir() is None and paths.committed_leaderboard_dir() is None


def test_leaderboard_of_a_results_folder_that_is_not_there_says_so(tmp_path, capsys):
    """`kgzoo bench --leaderboard-only --results my_reslts` (a typo) said "no result rows in my_reslts
    (run `kgzoo bench --results my_reslts` first)", as if the folder were there and empty; now it
    says the folder does not exist, with its absolute path. An empty folder keeps the old advice."""
    from kgzoo.cli import main

    missing = tmp_path / "my_reslts"
    assert main(["bench", "--leaderboard-only", "--results", str(missing), "--with-published", "--no-png"]) == 2
    assert f"error: --results {missing}: no such folder ({missing})" in capsys.readouterr().err
    assert main(["bench", "--leaderboard-only", "--results", str(tmp_path / "x.jsonl"), "--no-png"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["bench", "--leaderboard-only", "--results", str(tmp_path), "--no-png"]) == 2
    assert f"no result rows in {tmp_path} (run `kgzoo bench --results {tmp_path}` first)" in capsys.readouterr().err
    assert not missing.exists()

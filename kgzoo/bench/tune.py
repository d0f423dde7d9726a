"""``kgzoo tune``: hyper-parameter search with one equal budget for every model (issue 16, part 1).

The habit of PyKEEN's ``hpo`` (a fixed trial budget per model, Optuna underneath) and the
lesson of Dacrema et al. (RecSys 2019, "Are we really making much progress?"): a baseline
counts only when it was tuned with the same budget as the method it is compared with.

- **Space**: the ``tune:`` section of the model's zoo config (the dataset's file, else the
  model's ``default.yaml``), one entry per hyper-parameter::

      tune:
        lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        n_layers: {choices: [1, 2, 3]}
        layer_sizes: {choices: [[64], [64, 32], [64, 32, 16]]}

  ``low``/``high`` (floats, or ints with ``int: true`` and an optional ``step``), ``log``,
  or ``choices`` (scalars or lists; a list choice is suggested by its index).
- **Search**: Optuna's TPE sampler (Bergstra et al., NeurIPS 2011), seeded, after 5 random trials; the median
  pruner (Optuna's ``MedianPruner``: a trial whose validation value at an epoch is below the
  median of earlier trials at the same epoch stops; not before epoch 5, nor before the
  dataset's warm-up ends: :func:`pruner_warmup`) fed every validation epoch; the study in
  a local SQLite file keyed by model, dataset, data fingerprint, space and the fixed
  configuration (:func:`fixed_sha`), so a killed study resumes where it stopped and counts its
  finished trials towards the budget, and a study never resumes under other fixed values. A
  study whose SQLite file is gone (a new machine), or holds only its first trials, is rebuilt
  from its committed trial rows (:func:`restore_study`) before it goes on.
- **Each trial** trains with the config's converged schedule (early stopping on the
  validation main metric, the config's patience and cap) and is scored by its best
  validation value. The test split is never evaluated.
- **Output**: each finished trial is a JSON line in ``<results>/tuning/<model>-<dataset>.jsonl``
  (its parameters, state, best validation value, epochs, and ``curve``: the validation value it
  reported per 0-based epoch, which the pruner compared);
  the best values are written (:func:`write_tuned`) to a ``tuned:`` section of the model's
  config for that dataset, which :class:`kgzoo.config.ZooConfig` lays over ``model``.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import yaml

from .. import __version__
from ..api import check_config, check_model_class, model_hparams
from ..config import ZooConfig, config_file_name, tuned_from
from ..data.datasets import dataset_spec
from ..paths import PathLike, cache_dir, committed_results_dir, shown_path
from ..registry import MODELS
from ..protocols import parse_protocol, protocol_key
from .cells import Cell, cell_fingerprint
from .experiment import FitState, run_experiment
from .rows import append_line

#: Optuna trial states written to the tuning rows
_STATES = ("COMPLETE", "PRUNED", "FAIL")
#: random trials before TPE models the space (Optuna's default of 10 would make a 10-trial
#: budget a pure random search; Bergstra et al., NeurIPS 2011, section 4: TPE after a few random draws)
STARTUP_TRIALS = 5
#: 0-based epochs before the median pruner may stop a trial (Optuna's ``n_warmup_steps``); a
#: dataset's warm-up holds it longer (:func:`pruner_warmup`)
PRUNER_WARMUP = 5


def pruner_warmup(schedule: Any) -> int:
    """The median pruner's ``n_warmup_steps`` under the converged ``schedule``: :data:`PRUNER_WARMUP`,
    or where the dataset has a warm-up (``schedule.min_epochs``) the 0-based epoch from which early
    stopping may end the run (``min_epochs - 1``; Optuna prunes from step ``n_warmup_steps`` on),
    so that no trial is stopped on the plateau the warm-up is there for, by the pruner either."""
    return max(PRUNER_WARMUP, schedule.min_epochs - 1)


@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter.

    Attributes:
        name: the model's constructor argument. low, high: the range (``choices`` empty).
        log: sample on a log scale. integer: an integer range (``step`` its step).
        choices: a categorical parameter's values (scalars or lists).
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def scalar_choices(self) -> bool:
        """Whether the choices are scalars, which Optuna takes as they are (the parameter's own
        name); a list-valued choice (KGAT's ``layer_sizes``) is suggested by its index (``name#``)."""
        return all(isinstance(c, (bool, int, float, str)) or c is None for c in self.choices)

    def suggest(self, trial: Any) -> Any:
        """The value of this parameter for an Optuna ``trial``."""
        if self.choices:
            if self.scalar_choices:
                return trial.suggest_categorical(self.name, list(self.choices))
            return _plain(self.choices[trial.suggest_categorical(f"{self.name}#", list(range(len(self.choices))))])
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def distributions(self) -> dict[str, Any]:
        """``{optuna name: distribution}`` of this parameter, as :meth:`suggest` declares it (what
        :func:`restore_study` needs to rebuild a finished trial)."""
        if self.choices:
            if self.scalar_choices:
                return {self.name: optuna.distributions.CategoricalDistribution(list(self.choices))}
            return {f"{self.name}#": optuna.distributions.CategoricalDistribution(list(range(len(self.choices))))}
        if self.integer:
            return {self.name: optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log,
                                                                    step=self.step or 1)}
        return {self.name: optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=self.log)}

    def fixed(self, value: Any) -> dict[str, Any] | None:
        """``{optuna name: value}`` that makes :meth:`suggest` return ``value`` in an enqueued
        trial, or ``None`` when ``value`` lies outside this parameter's space."""
        if self.choices:
            plain = [_plain(c) for c in self.choices]
            if _plain(value) not in plain:
                return None
            if self.scalar_choices:
                return {self.name: value}
            return {f"{self.name}#": plain.index(_plain(value))}
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return None
        if self.integer and (int(value) != value or (int(value) - int(self.low)) % (self.step or 1)):
            return None
        return {self.name: int(value) if self.integer else float(value)}


def untuned_values(model: str, cfg: ZooConfig) -> dict[str, Any]:
    """What ``model`` trains with untuned: the config's ``model`` section as written
    (:attr:`ZooConfig.defaults`) over the defaults of the model class's constructor
    (:func:`kgzoo.api.model_hparams`), so a config that leaves a searched parameter to the
    class (or has no ``model`` section) still gives the default trial the value the model
    would use, not a sampled one."""
    cls = MODELS.get(model) if model in MODELS else None
    init = {n: p.default for n, p in model_hparams(cls).items() if p.default is not p.empty} if cls else {}
    return {**init, **cfg.defaults}


def default_point(space: Sequence[Param], defaults: dict[str, Any]) -> dict[str, Any]:
    """The optuna parameters of ``defaults`` (:func:`untuned_values`) that lie in ``space``; a
    searched parameter without a default, or with one outside the space, is left to the sampler."""
    point: dict[str, Any] = {}
    for p in space:
        if p.name in defaults:
            point.update(p.fixed(defaults[p.name]) or {})
    return point


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def parse_space(tune: dict[str, Any], where: str = "tune") -> list[Param]:
    """The :class:`Param` list of a ``tune:`` section.

    Raises:
        ValueError: naming ``where`` and the parameter: an entry that is not a mapping, neither
            ``choices`` nor ``low``/``high``, ``low >= high``, a non-positive ``low`` with
            ``log``, empty or repeated choices, an unknown key.
    """
    out = []
    for name, spec in tune.items():
        at = f"{where}.{name}"
        if not isinstance(spec, dict):
            raise ValueError(f"{at}: expected a mapping ({{low, high[, log, int, step]}} or {{choices}}), "
                             f"got {spec!r}")
        unknown = sorted(set(spec) - {"low", "high", "log", "int", "step", "choices"})
        if unknown:
            raise ValueError(f"{at}: unknown key {', '.join(map(repr, unknown))}")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ValueError(f"{at}.choices must be a non-empty list, got {choices!r}")
            keys = [json.dumps(c, sort_keys=True) for c in choices]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{at}.choices repeats a value: {choices!r}")
            out.append(Param(name, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices)))
            continue
        if "low" not in spec or "high" not in spec:
            raise ValueError(f"{at}: needs either choices or both low and high")
        low, high, log, integer = spec["low"], spec["high"], bool(spec.get("log", False)), bool(spec.get("int", False))
        for k, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{at}.{k} must be a finite number, got {v!r}")
        if not low < high:
            raise ValueError(f"{at}: low={low!r} must be below high={high!r}")
        if log and low <= 0:
            raise ValueError(f"{at}: log scale needs low > 0, got {low!r}")
        step = spec.get("step")
        if step is not None and (not integer or isinstance(step, bool) or not isinstance(step, int) or step < 1):
            raise ValueError(f"{at}.step must be an integer >= 1 on an integer range (int: true), got {step!r}")
        out.append(Param(name, low=low, high=high, log=log, integer=integer, step=step))
    return out


def space_size(space: Sequence[Param]) -> int | None:
    """The number of distinct points of ``space``: the product of its choices and integer ranges
    (``(high - low) // step + 1`` values each), ``None`` where a float range makes it unbounded.
    :func:`tune` counts a repeated point once, so a budget above this size could never be met."""
    size = 1
    for p in space:
        if p.choices:
            size *= len(p.choices)
        elif p.integer:
            size *= (int(p.high) - int(p.low)) // (p.step or 1) + 1
        else:
            return None
    return size


def space_sha(space: Sequence[Param]) -> str:
    """16 hex digits of the space (its study key: another space starts another study)."""
    payload = [dataclasses.asdict(p) for p in space]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _trial_seconds(row: dict[str, Any] | None, wall: float) -> float:
    """A trial row's ``seconds``: its run's ``cell_seconds`` where the run returned a row (a trial
    resumed from an interrupted one's point counts every process), else this process's ``wall``."""
    return float((row or {}).get("cell_seconds") or wall)


class PruningCallback(FitState):
    """Report the monitored validation value of every epoch to an Optuna trial (step: the 0-based
    epoch) and stop the trial when the pruner says so (raises ``optuna.TrialPruned`` out of
    ``fit``). The first report also records the monitored name as the trial's ``monitor`` user
    attribute, so a pruned trial's row names it as a complete one's does (:func:`pruned_curve`).

    Its state (the values reported so far) goes into the run's checkpoints: the rerun of an
    interrupted trial that resumes from the trial's resume point
    (:class:`kgzoo.bench.experiment.ResumePoint`) first reports the epochs before the point to its
    new trial, so the pruner judges the whole curve, as it judged the uninterrupted trial."""

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self._named = False
        self._reported: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self._report(trainer.current_epoch, float(value))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch}: {self.monitor}={float(value):.4f}")

    def state_dict(self) -> dict[str, Any]:
        return {"reported": [[e, v] for e, v in self._reported]}

    def restore(self, state: dict[str, Any]) -> None:
        for e, v in state["reported"]:  # the resumed trial's epochs before its point (the uninterrupted trial passed them)
            self._report(int(e), float(v))

    def _report(self, epoch: int, value: float) -> None:
        if not self._named:
            self.trial.set_user_attr("monitor", self.monitor)
            self._named = True
        self.trial.report(value, step=epoch)
        self._reported.append((epoch, value))


@dataclass
class TuneReport:
    """What :func:`tune` did: the study's best values and trial counts, the rows file, the config written."""

    model: str
    dataset: str
    trials: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    monitor: str = ""
    rows: Path | None = None
    config: Path | None = None
    seconds: float = 0.0
    #: the default trial (the config's own values, outside the budget): state, value, trial, chosen
    default: dict[str, Any] = field(default_factory=dict)
    #: finished trials rebuilt from the rows file because the study's SQLite file lacked them
    #: (:func:`restore_study`: none of them, or only the first ones)
    restored: int = 0
    #: the key from before the fixed sha whose trials begin this study (:func:`legacy_study`);
    #: the ``tuned:`` record names it as ``extends``, so a new machine finds them again
    extends: str | None = None


def resume_seed(seed: int, n_trials: int) -> int:
    """The sampler seed of a study resumed with ``n_trials`` trials in it: deterministic, and other
    than the first process's ``seed`` (whose random start-up draws the study already holds)."""
    return (seed * 1_000_003 + n_trials) % 2**32


def fixed_sha(cfg: ZooConfig, space: Sequence[Param]) -> str:
    """16 hex digits of what every trial runs besides the searched values: the config's ``model``
    section as written (:attr:`ZooConfig.defaults`, so not its ``tuned:`` values) less the
    searched names, its ``data`` section and the converged schedule (``max_epochs``,
    ``patience``, ``monitor``, and the dataset's warm-up ``min_epochs`` where it has one); its
    ``bench`` section, ``tuned:`` record and comments stay out.
    A study resumes only under the same fixed configuration (a changed training procedure, such
    as KGAT's ``optimization``, starts another study)."""
    searched = {p.name for p in space}
    schedule = cfg.schedule(quick=False)
    payload = {"model": {k: v for k, v in cfg.defaults.items() if k not in searched}, "data": cfg.data,
               "schedule": {**schedule.record(), "monitor": schedule.monitor}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def study_name(model: str, dataset: str, fingerprint: str, space: Sequence[Param], seed: int, fixed: str) -> str:
    """The study's key in its SQLite file:
    ``model/dataset/<fingerprint 16 hex>/<space sha>/<fixed sha>/seed<S>`` (``fixed``:
    :func:`fixed_sha`); other data, another space, another fixed configuration or another
    sampler seed start another study."""
    return f"{model}/{dataset}/{fingerprint[:16]}/{space_sha(space)}/{fixed}/seed{seed}"


def restore_study(study: Any, rows: Path, space: Sequence[Param], where: str = "its storage",
                  name: str | None = None) -> int:
    """Rebuild a study from its committed trial rows, so that a study whose SQLite file is gone
    (a new machine, a cleared cache), or holds only its first trials (the study went on from its
    rows on another machine), resumes where its rows stop instead of running those trials again.

    Every row of ``rows`` whose ``study`` is ``study.study_name`` and whose trial number the study
    does not hold yet becomes a finished trial of the
    same number, state, value, parameters (decoded through ``space``: :meth:`Param.fixed`) and
    user attributes (``monitor``, ``default``, ``rerun_of``, ``capped`` from ``stopped_by: cap``,
    a failed row's ``error``), with its validation curve as the trial's intermediate values (the
    row's ``curve``; a pruned row written before rows had one gets its last reported value at its
    last epoch, which is what the row holds), so the median pruner and TPE see what they saw
    (trials without a curve leave the pruner's median to those that have one). A trial number
    without a row (cut off by a killed process before its row was written; its rerun has a row)
    is restored as an interrupted trial marked ``gap``: it keeps the numbers of the study, is not
    counted and is not rerun. The trials the study already holds must be those of the rows
    (same state and parameters wherever both have the number): Optuna numbers trials in order,
    so rows can only extend a study that is their beginning.

    Args:
        study: an Optuna study (the trials it holds are kept; rows numbered past them are added).
        rows: the trial rows file (``<results>/tuning/<model>-<dataset>.jsonl``); missing: nothing.
        space: the study's search space.
        where: the study's storage as the error names it (``kgzoo tune``: the SQLite file).
        name: the study name of the rows to read (default ``study.study_name``; a key from before
            the fixed sha: :func:`legacy_study`).

    Returns:
        The number of trials restored from rows (gaps not counted); 0 where the study already
        holds every numbered row.

    Raises:
        ValueError: where the rows are read for a restore (the study is empty, or rows are numbered
            past its trials; else they are left alone, as before rows could extend a study), naming
            the file, line and field: a line that is not JSON, a row of the study
            without an integer ``trial`` or with an unknown ``state``, a trial number written twice
            with another state, value or parameters (two histories of one study), a complete row
            without a finite ``value``, ``params`` that lack a searched name or hold a value outside
            the space; and, where rows extend the study, a trial of the study that its row
            contradicts (another state or parameters, or cut off here and finished there: the
            study went on from its rows elsewhere after this storage stopped).
    """
    if not rows.is_file():
        return 0
    found: dict[int, tuple[int, dict[str, Any]]] = {}
    bad: list[str] = []  # raised where the rows are read for a restore (see below)
    for i, line in enumerate(rows.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(f"{rows}:{i}: not a JSON trial row ({e.msg})")
            continue
        if not isinstance(row, dict) or row.get("study") != (name or study.study_name):
            continue
        n = row.get("trial")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            bad.append(f"{rows}:{i}: field 'trial' must be an integer >= 0, got {n!r}")
        elif row.get("state") not in _STATES:
            bad.append(f"{rows}:{i}: field 'state' must be one of {', '.join(_STATES)}, got {row.get('state')!r}")
        elif n not in found:
            found[n] = (i, row)
        elif any(found[n][1].get(k) != row.get(k) for k in ("state", "params", "value")):
            # the same row twice (a merge) is one trial; two different rows are two histories
            bad.append(f"{rows}:{i}: field 'trial' {n} is written twice (line {found[n][0]} too) with another "
                       f"state, value or parameters: two histories of one study, run from the same trials on two "
                       f"machines; keep the rows of one")
    held = study.get_trials(deepcopy=False)
    if held and (not found or max(found) < len(held)):
        return 0  # the study holds every numbered row: the rows are not read for it (a torn line left alone)
    if bad:
        raise ValueError(bad[0])
    if not found:
        return 0
    dists = {k: v for p in space for k, v in p.distributions().items()}

    def decoded(i: int, row: dict[str, Any]) -> dict[str, Any]:
        given = row.get("params") if isinstance(row.get("params"), dict) else {}
        params: dict[str, Any] = {}
        for p in space:
            if p.name not in given:
                raise ValueError(f"{rows}:{i}: field 'params' has no {p.name!r} (the study's space searches it)")
            point = p.fixed(given[p.name])
            if point is None:
                raise ValueError(f"{rows}:{i}: field 'params.{p.name}' = {given[p.name]!r} lies outside the space")
            params.update(point)
        return params

    for t in held:
        if t.number not in found:
            continue
        i, row = found[t.number]
        if t.state.name != row["state"] or _interrupted(t) or decoded(i, row) != t.params:
            raise ValueError(
                f"{rows}:{i}: trial {t.number} is {row['state']} {json.dumps(row.get('params'), default=str)} "
                f"in its rows but {'cut off' if _interrupted(t) else t.state.name} "
                f"{json.dumps(t.params, default=str)} in {where}: the study went on from its rows elsewhere "
                f"after {where} stopped, so the rows cannot extend it; rebuild it from its rows alone "
                f"(another storage, e.g. kgzoo tune --storage NEW.sqlite3)")
    state_of = optuna.trial.TrialState
    trials = []  # every row checked before the first is added: a bad row leaves the study as it was
    for n in range(len(held), max(found) + 1):
        if n not in found:
            trials.append(optuna.trial.create_trial(state=state_of.FAIL, user_attrs={"gap": True}))
            continue
        i, row = found[n]
        params = decoded(i, row)
        state, value = row["state"], row.get("value")
        if state == "COMPLETE" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                    or not math.isfinite(value)):
            raise ValueError(f"{rows}:{i}: field 'value' of a complete trial must be a finite number, got {value!r}")
        curve = {int(k): float(v) for k, v in (row.get("curve") or {}).items()}
        if not curve and state == "PRUNED" and isinstance(value, (int, float)) and isinstance(row.get("epochs"), int):
            curve = {row["epochs"] - 1: float(value)}
        attrs: dict[str, Any] = {"restored_from": f"{rows.name}:{i}"}
        if name and name != study.study_name:  # a legacy key's trial: the record says the study extends it
            attrs["legacy"] = name
        if row.get("default"):
            attrs["default"] = True
        if row.get("monitor"):
            attrs["monitor"] = row["monitor"]
        if row.get("rerun_of") is not None:
            attrs["rerun_of"] = row["rerun_of"]
        if row.get("stopped_by") == "cap":
            attrs["capped"] = True
        if state == "FAIL":
            attrs["error"] = str(row.get("error") or "failed (its row names no error)")
        trials.append(optuna.trial.create_trial(
            state=state_of[state], value=float(value) if state != "FAIL" and value is not None else None, params=params,
            distributions={k: dists[k] for k in params}, user_attrs=attrs, intermediate_values=curve))
    study.add_trials(trials)
    return sum(n in found for n in range(len(held), max(found) + 1))


def other_studies(rows: Path, name: str) -> dict[str, int]:
    """``study name -> trial rows`` of the studies in ``rows`` other than ``name`` (none for a
    missing file; lines that are not JSON objects are left to :func:`restore_study`)."""
    out: dict[str, int] = {}
    for line in rows.read_text().splitlines() if rows.is_file() else ():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("study") not in (None, name):
            out[str(row["study"])] = out.get(str(row["study"]), 0) + 1
    return out


def legacy_key(name: str) -> str | None:
    """The study key ``name`` (``model/dataset/<fingerprint>/<space sha>/<fixed sha>/seed<S>``,
    :func:`study_name`) as it was before :func:`fixed_sha` joined keys: without its fixed sha;
    ``None`` for a name of another shape (a legacy key itself)."""
    parts = name.split("/")
    return "/".join(parts[:4] + parts[5:]) if len(parts) == 6 else None


def legacy_study(cfg: ZooConfig, name: str) -> str | None:
    """The key from before the fixed sha (``model/dataset/<fingerprint>/<space sha>/seed<S>``: a
    study made before :func:`fixed_sha` joined the key) whose trials begin the study ``name``:
    the key the config's own ``tuned:`` record names when it is ``name`` without its fixed sha
    (the config holds that study's values), or the ``extends`` of a record of ``name`` itself
    (the study went on under today's key: :func:`tune` wrote it so). ``None`` otherwise (no
    record, a ``tuned: {from: ...}`` record, or a record of another study, e.g. KGAT's before its
    alternating training). :func:`restore_rows` restores such a study from its rows first, so a
    finished study is found again and re-running a lane does not tune it anew."""
    legacy = legacy_key(name)
    if legacy is None or not cfg.tuned or "from" in cfg.tuned:
        return None
    named = cfg.tuned.get("study")
    return legacy if named == legacy or (named == name and cfg.tuned.get("extends") == legacy) else None


def restore_rows(study: Any, rows: Path, space: Sequence[Param], cfg: ZooConfig, where: str) -> tuple[int, str | None]:
    """Restore ``study`` from its trial rows: those of its legacy key first where the study holds
    no trial and the config's record leads there (:func:`legacy_study`), then its own rows, which
    extend them (a study restored from legacy rows on one machine and run on under today's key
    writes its new trials' rows under that key, numbered after the legacy ones).

    Returns:
        ``(restored, legacy)``: the trials restored (both keys) and the legacy key read, or ``None``.

    Raises:
        ValueError: a bad row of either key, as :func:`restore_study` raises it; a record that
            names the legacy key as ``extends`` where the rows hold none of its trials.
    """
    legacy = legacy_study(cfg, study.study_name) if not study.trials else None
    restored = restore_study(study, rows, space, where=where, name=legacy) if legacy else 0
    if legacy and not restored and cfg.tuned.get("extends") == legacy:
        # the record says this study's trials begin with that key's rows: without them today's key's
        # rows would restore with gaps in their place and the study would be tuned anew over the record
        raise ValueError(f"{cfg.path}: the tuned: record's study {study.study_name} extends {legacy}, but {rows} "
                         f"holds no trial row of {legacy}: restore that key's rows (git) before tuning it")
    if legacy and not restored:
        legacy = None
    return restored + restore_study(study, rows, space, where=where), legacy


def study_extends(study: Any, rows: Path, space: Sequence[Param], cfg: ZooConfig) -> str | None:
    """The legacy key (:func:`legacy_study`) whose trials begin ``study``, for the ``extends`` of
    its record: the ``legacy`` mark of its trials restored from that key's rows (:func:`restore_study`),
    or, for a SQLite file into which a kgzoo before that mark restored them, the key the config's
    record leads to where the study's first trials are that key's rows (restored from them: same
    numbers, states, values and parameters). ``None`` otherwise."""
    marked = next((t.user_attrs["legacy"] for t in study.trials if t.user_attrs.get("legacy")), None)
    legacy = legacy_study(cfg, study.study_name)
    if marked or legacy is None or not study.trials:
        return marked
    mem = optuna.create_study(study_name=legacy, direction="maximize")  # in memory: the legacy rows alone
    try:
        if not restore_study(mem, rows, space):
            return None
    except ValueError:
        return None
    held = {t.number: t for t in study.trials}
    for t in mem.trials:
        if t.user_attrs.get("gap"):
            continue
        h = held.get(t.number)
        if (h is None or "restored_from" not in h.user_attrs or h.state != t.state or h.value != t.value
                or h.params != t.params):
            return None
    return legacy


def default_results_dir() -> Path:
    """Where ``kgzoo tune`` writes its trial rows by default, whatever the working directory: the
    checkout's ``benchmarks/results`` (:func:`kgzoo.paths.committed_results_dir`: beside the committed
    rows and the ``zoo_configs`` that the ``tuned:`` record goes to), or for an installed kgzoo
    the user cache's ``runs`` folder (:func:`kgzoo.paths.cache_dir`, where the study's SQLite file is)."""
    committed = committed_results_dir()
    return committed if committed is not None else cache_dir("runs")


def tune(model: str, dataset: str, trials: int, *, seed: int = 0, results: PathLike | None = None,
         storage: PathLike | None = None, write_config: PathLike | None = None, root: str | None = None,
         experiment: Callable[..., Any] | None = None, fingerprint: Callable[[str, str], str] | None = None,
         log: Callable[[str], None] | None = print, protocol: str = "") -> TuneReport:
    """Run (or resume) the study of ``model`` on ``dataset`` until it holds ``trials`` finished trials.

    Args:
        trials: the budget: finished searched trials (complete, pruned or failed) the study must
            hold. On top of them the study evaluates its default trial once, never pruned: the
            config's own values (:attr:`ZooConfig.defaults`) where they lie in the space; the best
            of all (default included) is chosen and the record says whether the default won.
        seed: seeds the TPE sampler and every trial's training (initialisation, sampling).
        results: folder of the tuning rows (``tuning/<model>-<dataset>.jsonl`` below it; default
            :func:`default_results_dir`, never the working directory).
        storage: the SQLite file of the study (default ``cache_dir("runs")/tune.sqlite3``).
        write_config: a config folder to write the ``tuned:`` section into (``None``: none);
            normally the repository's ``zoo_configs``.
        experiment: runs one trial (default :func:`kgzoo.bench.experiment.run_experiment`);
            called with ``model, dataset, seed=, model_overrides=, callbacks=, run_test=False,
            root=`` and returns a result row with ``valid_metrics``.
        fingerprint: ``(model, dataset) -> data fingerprint`` (default: the cell's).
        protocol: evaluation protocol fields over the dataset's default, as ``kgzoo bench
            --protocol`` takes them (``"split=cold_item"``): the trials train and select on that
            protocol's validation split, their rows go to ``tuning/<model>-<dataset>@<protocol>.jsonl``
            and the values to the protocol's own config file ``<model>/<dataset>@<protocol>.yaml``
            (:func:`kgzoo.config.config_file_name`), which the cells of that protocol read
            (:func:`kgzoo.bench.cells.cell_config`); the default protocol's record stays as it was.

    Raises:
        ValueError: ``trials`` < 1, a config without a ``tune:`` section, a bad space, a budget above
            the number of distinct points of a finite space (:func:`space_size`), a name in the
            config's ``model``, ``tuned.params`` or ``tune`` that the model does not take
            (:func:`kgzoo.api.check_config`, naming the file), before any trial.
        KeyError: an unknown model or dataset (with suggestions), checked before the config.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials={trials!r} must be an integer >= 1")
    MODELS.entry(model)  # an unknown name is that, not a config "without a tune: section"
    dataset_spec(dataset)
    key = protocol_key(dataset, protocol, model) if protocol else ""
    shown = f"{dataset} ({key})" if key else dataset  # what the messages call it
    cfg = ZooConfig.load(model, dataset, protocol=key)
    if not cfg.tune:
        raise ValueError(f"{model} on {shown}: no tune: section in {cfg.path or 'any zoo config'}, so there is "
                         "nothing to search: add the search space there (docs/contracts.md, 'Tuning'), or run the "
                         "model untuned (a model without trained hyper-parameters, such as pop, has none)")
    space = parse_space(cfg.tune, f"{cfg.tune_path or cfg.path}: tune")
    size = space_size(space)
    if size is not None and trials > size:  # repeats count once: the loop would never end
        raise ValueError(f"{model} on {shown}: a budget of {trials} trials exceeds the {size} distinct points of the "
                         f"tune: space in {cfg.tune_path or cfg.path} (a repeated point is not counted, so the study "
                         f"could never finish); give --trials {size} or fewer, or widen the space")
    check_model_class(model, MODELS.get(model))  # no loss or scoring: one error, not a budget of failed trials
    check_config(model, MODELS.get(model), cfg)  # a typo there: one error, not a budget of failed trials
    schedule = cfg.schedule(quick=False)
    if experiment is None:
        experiment = run_experiment
    if fingerprint is None:
        fp = _cell_fingerprint(model, dataset, key)
    else:
        fp = fingerprint(model, dataset)
    on_protocol = {"protocol": parse_protocol(dataset, key, model)} if key else {}
    storage = Path(storage) if storage is not None else cache_dir("runs") / "tune.sqlite3"
    storage.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name(model, dataset, fp, space, seed, fixed_sha(cfg, space)), storage=f"sqlite:///{storage}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS), load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=pruner_warmup(schedule)))
    rows_path = (Path(results if results is not None else default_results_dir()) / "tuning"
                 / f"{model}-{dataset}{'@' + key if key else ''}.jsonl")
    say = log or (lambda s: None)
    held = len(study.trials)
    restored, legacy = restore_rows(study, rows_path, space, cfg, shown_path(storage))
    others = {} if study.trials else other_studies(rows_path, study.study_name)
    if others:  # rows that look like this study's but are not: it starts over (a lane would spend hours)
        say(f"{model} on {shown}: a new study ({study.study_name}); {shown_path(rows_path)} holds "
            f"{sum(others.values())} trials of {len(others)} other studies of it (another data fingerprint, "
            "search space, fixed configuration or seed, or a key from before the fixed configuration joined it "
            "that the config's tuned: record does not name), which this one does not resume")
    if restored:
        say(f"{model} on {shown}: the study's SQLite file ({shown_path(storage)}) held "
            f"{f'only its first {held} trials' if held else 'none of its trials'}; "
            f"{restored} finished trials restored from their rows in {shown_path(rows_path)}"
            + (f" (beginning with study {legacy}: the key from before the fixed sha joined it, which the "
               "config's tuned: record names)" if legacy else ""))
    sampler_seed = seed
    if study.trials:  # a resumed study: a sampler seeded as in the first process would redraw its points
        sampler_seed = resume_seed(seed, len(study.trials))
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=STARTUP_TRIALS)
    out_dir = cache_dir("runs") / "tune" / f"{model}-{dataset}"
    t0 = time.perf_counter()
    # the legacy key whose trials begin the study (restored now, or into its SQLite file earlier)
    extends = study_extends(study, rows_path, space, cfg)
    report = TuneReport(model, dataset, trials, rows=rows_path, restored=restored, extends=extends)

    # A trial still RUNNING when the study opens was cut off by a killed process (one process runs a
    # study at a time): it is closed as FAIL, marked interrupted (a FAIL without the ``error`` that a
    # failed experiment records), and does not count against the budget. Every interrupted point
    # that no finished trial holds and no queued trial will run is queued to run again (the rerun's
    # ``rerun_of`` names it), so a point cut off twice, or whose rerun was cut off, still runs (seen
    # on gcn/ml-100k-kg trial 2 and lightgcn/amazon-hin trial 7: a rerun cut off in its turn was
    # dropped as a repeat of its own interrupted original and took a budget slot without running).
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    done_points = {_point(t) for t in study.trials if t.state.name in _STATES and not _interrupted(t)}
    queued = {(bool(t.user_attrs.get("default")), json.dumps(t.system_attrs.get("fixed_params", {}), sort_keys=True,
                                                            default=str))
              for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
    for t in study.trials:
        if not _interrupted(t) or t.user_attrs.get("gap"):  # a restored gap: its rerun has a row
            continue
        point = _point(t)
        if point in done_points or point in queued:  # finished elsewhere, or its rerun already queued
            continue
        queued.add(point)
        study.enqueue_trial(t.params, user_attrs={"rerun_of": t.number, "default": bool(t.user_attrs.get("default"))},
                            skip_if_exists=False)
        say(f"{model} on {shown}: trial {t.number} was interrupted; its parameters run again")

    # The default trial: the config's own values (its paper's or RecBole's defaults) are evaluated
    # once in every study, on top of the searched budget, so that a tuned baseline is never chosen
    # below its own defaults by a budget too small for its space (seen on kgcn/ml-100k-kg: six TPE
    # trials at valid NDCG@10 0.12 against 0.17 for the defaults). A study opened before this rule
    # gets it as its next trial.
    if not any(t.user_attrs.get("default") for t in study.trials):
        study.enqueue_trial(default_point(space, untuned_values(model, cfg)), user_attrs={"default": True},
                            skip_if_exists=False)

    def counted() -> list[Any]:
        # finished trials, less the interrupted ones (their reruns count) and less repeats of a
        # point already counted (a sampler reseeded as the first process redrew its points before
        # resume_seed: lightgcn/amazon-hin trials 4 and 5 are trials 0 and 1 again)
        out, seen = [], set()
        for t in study.trials:
            if t.state.name not in _STATES or _interrupted(t):
                continue
            point = _point(t)
            if point in seen:
                continue
            seen.add(point)
            out.append(t)
        return out

    def finished() -> int:  # the searched trials: the default trial is not part of the budget
        return sum(not t.user_attrs.get("default") for t in counted())

    while finished() < trials or not any(t.user_attrs.get("default") for t in counted()):
        trial = study.ask()
        params = {p.name: p.suggest(trial) for p in space}
        t1 = time.perf_counter()
        row: dict[str, Any] | None = None
        monitor = ""
        try:
            row = _as_dict(experiment(model, dataset, seed=seed, model_overrides=params, root=root, run_test=False,
                                      out_dir=out_dir, progress=False, resume=True,  # an interrupted trial's rerun
                                      **on_protocol,
                                      callbacks=lambda net: [] if trial.user_attrs.get("default") else
                                      [PruningCallback(trial, f"valid/{net.main_metric}")]))
            monitor = f"valid/{row['main_metric']}"
            value = row["valid_metrics"].get(monitor)
            if value is None or not math.isfinite(float(value)):
                raise ValueError(f"no finite {monitor} in the trial's row")
            trial.set_user_attr("monitor", monitor)
            if row.get("stopped_by") == "cap":  # the cap ended it before early stopping could: not converged
                trial.set_user_attr("capped", True)
            study.tell(trial, float(value))
            state, error = "COMPLETE", None
        except optuna.TrialPruned as e:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            state, error = "PRUNED", str(e)
            value, pruned = pruned_curve(_frozen(study, trial.number))
            row, monitor = pruned, pruned["monitor"] or ""
        except Exception as e:  # noqa: BLE001 - a failed trial is a result; the study goes on
            state, error, value = "FAIL", f"{type(e).__name__}: {e}", None
            trial.set_user_attr("error", error[:1000])  # a failed result, not an interrupted trial
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        append_line(rows_path, json.dumps({
            "model": model, "dataset": dataset, "fingerprint": fp, "study": study.study_name, "trial": trial.number,
            "state": state, "params": params, "value": value, "monitor": monitor or None,
            "epochs": (row or {}).get("epochs"), "best_epoch": (row or {}).get("best_epoch"),
            "stopped_by": (row or {}).get("stopped_by"), "seconds": round(_trial_seconds(row, time.perf_counter() - t1), 3),
            "schedule": schedule.record(),
            "sampler": {"name": "TPESampler", "seed": seed, "n_startup_trials": STARTUP_TRIALS,
                        "process_seed": sampler_seed},
            "pruner": f"MedianPruner(5, {pruner_warmup(schedule)})", "error": error,
            "rerun_of": trial.user_attrs.get("rerun_of"),
            "default": bool(trial.user_attrs.get("default")),
            "curve": {str(k): v for k, v in sorted(_frozen(study, trial.number).intermediate_values.items())},
            "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}, sort_keys=True, default=str))
        say(progress_line(model, shown, trial.number, state, value, row or {}, params,
                          default=bool(trial.user_attrs.get("default")), done=finished(), trials=trials,
                          max_epochs=schedule.max_epochs, error=error if state == "FAIL" else None))
    states = [t.state.name for t in counted() if not t.user_attrs.get("default")]
    report.complete, report.pruned, report.failed = (states.count(s) for s in _STATES)
    report.seconds = time.perf_counter() - t0
    default = next(t for t in counted() if t.user_attrs.get("default"))
    report.default = {"state": default.state.name, "value": default.value, "trial": default.number}
    done = [t for t in counted() if t.state.name == "COMPLETE"]
    if not done:
        say(f"{model} on {shown}: no trial completed; nothing written")
        return report
    best = max(done, key=lambda t: t.value)
    report.default["chosen"] = best.number == default.number
    report.best_value, report.monitor = float(best.value), best.user_attrs["monitor"]
    report.best_params = {p.name: _from_trial(p, best.params) for p in space}
    if write_config is not None:
        report.config = write_tuned(Path(write_config), cfg, report, schedule, study.study_name)
    if best.user_attrs.get("capped"):  # the file later runs read: under a protocol, its own (laid over the dataset's)
        say(f"{model} on {shown}: the best trial stopped at its cap of {schedule.max_epochs} epochs before "
            f"early stopping ended it: its value is not converged; raise train.max_epochs in "
            f"{report.config or cfg.path or 'the config'}")
    return report


def progress_line(model: str, dataset: str, number: int, state: str, value: float | None, row: dict[str, Any],
                  params: dict[str, Any], *, default: bool, done: int, trials: int, max_epochs: int,
                  error: str | None = None) -> str:
    """The line :func:`tune` prints after a trial: ``[done/trials]`` (``[defaults]`` for the default
    trial, which is outside the budget), the state, the value, the epochs trained and the best
    epoch (0-based) where the row has them, a cap that stopped the trial, the parameters, and a
    failed trial's ``error`` (``"; ValueError: ..."``: the row's, so a failure is read where it is seen)."""
    epochs, best = row.get("epochs"), row.get("best_epoch")
    return (f"[{'defaults' if default else f'{done}/{trials}'}] {model} on {dataset} trial {number}"
            + (" (the config's own values, outside the budget)" if default else "") + f": {state.lower()}"
            + (f", {value:.4f}" if isinstance(value, float) else "")
            + (f" after {epochs} epochs (best epoch {best})" if epochs is not None and best is not None else "")
            + (f", stopped at its cap of {max_epochs} epochs" if row.get("stopped_by") == "cap" else "")
            + f" {json.dumps(params, default=str)}" + (f"; {error}" if error else ""))


def _frozen(study: Any, number: int) -> Any:
    """The finished ``FrozenTrial`` numbered ``number`` of ``study``."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _interrupted(trial: Any) -> bool:
    """Whether a finished trial was cut off by a killed process: closed as FAIL when the study was
    next opened, without the ``error`` user attribute that a failed experiment records."""
    return trial.state.name == "FAIL" and "error" not in trial.user_attrs


def _point(trial: Any) -> tuple[bool, str]:
    """A trial's point: whether it is the default trial, and its parameters (canonical JSON)."""
    return bool(trial.user_attrs.get("default")), json.dumps(trial.params, sort_keys=True, default=str)


def _from_trial(p: Param, params: dict[str, Any]) -> Any:
    if p.choices and f"{p.name}#" in params:
        return _plain(p.choices[params[f"{p.name}#"]])
    return params[p.name]


def pruned_curve(trial: Any) -> tuple[float | None, dict[str, Any]]:
    """What a pruned trial's row says of its training, read from the validation values it reported
    (:class:`PruningCallback`: one per validated epoch, keyed by the 0-based epoch).

    Args:
        trial: a finished Optuna trial (``FrozenTrial``: ``intermediate_values``, ``user_attrs``).

    Returns:
        ``(value, fields)``: ``value`` the last reported validation value (where the pruner
        stopped it); ``fields`` the row's ``epochs`` (epochs trained: the last reported epoch + 1),
        ``best_epoch`` (0-based epoch of the best reported value, the first on ties, as
        :class:`kgzoo.bench.experiment.EpochTimer` picks it), ``stopped_by`` (``"pruner"``) and
        ``monitor``; ``None`` for each where the trial reported nothing.
    """
    values = trial.intermediate_values
    if not values:
        return None, {"epochs": None, "best_epoch": None, "stopped_by": "pruner",
                      "monitor": trial.user_attrs.get("monitor")}
    steps = sorted(values)
    best = max(steps, key=lambda s: (values[s], -s))
    return float(values[steps[-1]]), {"epochs": steps[-1] + 1, "best_epoch": best, "stopped_by": "pruner",
                                      "monitor": trial.user_attrs.get("monitor")}


def _as_dict(row: Any) -> dict[str, Any]:
    return row.to_dict() if hasattr(row, "to_dict") else dict(row)


def _cell_fingerprint(model: str, dataset: str, protocol: str = "") -> str:
    return cell_fingerprint(Cell(model, dataset, 0, protocol=protocol))[0]


def write_tuned(config_dir: Path, cfg: ZooConfig, report: TuneReport, schedule: Any, study: str) -> Path:
    """Write the study's best values as the ``tuned:`` section of ``<config_dir>/<model>/<dataset>.yaml``.

    The file keeps its text (comments included); an earlier ``tuned:`` section is replaced; the
    comment above it names the trial rows file (:func:`_rows_label`).
    A dataset without a file of its own gets one: the ``default.yaml`` it used, copied, with
    the section appended. Under a protocol (``cfg.protocol``) the file is the protocol's,
    ``<model>/<dataset>@<protocol>.yaml``, holding the section alone (:func:`_write_record`).
    Returns the file written.

    Raises:
        OSError: the folder or file cannot be written.
    """
    record = {
        "params": report.best_params, "best_valid": {report.monitor.removeprefix("valid/"): round(report.best_value, 6)},
        "trials": report.trials, "complete": report.complete, "pruned": report.pruned, "failed": report.failed,
        "budget": {"trials": report.trials, **schedule.record()},
        "default": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.default.items()},
        "study": study, **({"extends": report.extends} if report.extends else {}),
        "date": datetime.date.today().isoformat(), "kgzoo": __version__}
    return _write_record(config_dir, cfg, record, f"the values kgzoo tune chose ({report.trials} trial{'' if report.trials == 1 else 's'})",
                         "chosen by `kgzoo tune` on the validation split only (test never read); "
                         f"trials in {_rows_label(Path(report.rows), Path(config_dir))}")


def _rows_label(rows: Path, config_dir: Path) -> str:
    """The trial rows file as the ``tuned:`` comment names it: relative to the folder holding the
    config folder where the rows are inside it (a checkout: ``benchmarks/results/tuning/...``
    beside ``zoo_configs/``, whatever the working directory), else :func:`~kgzoo.paths.shown_path`."""
    try:
        return rows.resolve().relative_to(config_dir.resolve().parent).as_posix()
    except ValueError:
        return shown_path(rows)



def write_tuned_from(config_dir: Path, cfg: ZooConfig, source: str) -> Path:
    """Write ``tuned: {from: source}`` into ``<config_dir>/<model>/<dataset>.yaml``: this dataset
    takes the values ``kgzoo tune`` chose on ``source`` (the same domain's small set, issue 16),
    and its rows say so (:func:`kgzoo.config.ZooConfig.load` resolves the record).

    Raises:
        ValueError: ``source`` is this dataset or has no ``tuned:`` record of its own (checked
            before anything is written, by :func:`kgzoo.config.tuned_from`). OSError: as
            :func:`write_tuned`.
    """
    path = config_dir / cfg.model_name / f"{cfg.dataset}.yaml"
    # a folder that does not exist yet holds no record: the check reads the others, the write makes it
    tuned_from(cfg.model_name, cfg.dataset, {"from": source}, path, [config_dir] if config_dir.is_dir() else [])
    return _write_record(config_dir, cfg, {"from": source}, f"the values kgzoo tune chose on {source}",
                         f"chosen by `kgzoo tune` on {source} (the same domain's small set), validation only")


#: the first line :func:`_write_record` writes: ``# <model> on <dataset>: <file> as it was, with <origin>``
_HEADER = re.compile(r"\A# \S+ on \S+: (?P<source>\S+) as it was, with [^\n]*\n")
#: the first line of a protocol's file (:func:`_write_record`)
_PROTOCOL_HEADER = re.compile(r"\A# \S+ on \S+@\S+: laid over [^\n]*\n")


def _write_record(config_dir: Path, cfg: ZooConfig, record: dict[str, Any], origin: str, comment: str) -> Path:
    """``record`` as the ``tuned:`` section of the model's dataset file, or of its protocol's
    (:func:`kgzoo.config.config_file_name`: ``cfg.protocol``), which holds that section alone (and
    what a user wrote there): :meth:`kgzoo.config.ZooConfig.load` lays it over the dataset file
    (see :func:`write_tuned`)."""
    path = config_dir / cfg.model_name / config_file_name(cfg.dataset, cfg.protocol)
    if cfg.protocol:  # the protocol's own file: what it held less its header, never a copy of the dataset file
        text = path.read_text() if path.is_file() else ""
        head = _PROTOCOL_HEADER.match(text)
        header = f"# {cfg.model_name} on {cfg.dataset}@{cfg.protocol}: laid over its {cfg.dataset} config, with {origin}\n"
    else:
        source = path if path.is_file() else cfg.path
        text = source.read_text() if source is not None else ""
        # the header names the file first copied and the record now written: an earlier header (its
        # trial count, or the header of the file copied) is replaced, never stacked or left stale
        head = _HEADER.match(text)
        first = head["source"] if head and path.is_file() else source.name if source is not None else "no config"
        if cfg.inherited_from and not path.is_file():  # the parent's file: its numbers and note are the parent's
            text = strip_sections(text, _PARENTS_OWN)
            first = f"{cfg.inherited_from}/{first}"
        header = f"# {cfg.model_name} on {cfg.dataset}: {first} as it was, with {origin}\n"
    body = strip_tuned(text[head.end() if head else 0:]).strip("\n")
    text = header + (body + "\n" if body else "") + f"# {comment}\n"
    text += yaml.safe_dump({"tuned": record}, sort_keys=False, default_flow_style=None, width=110)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


#: the sections of a registered parent's config that speak of the parent alone: a subclass's
#: study copies the parent's file (:func:`_write_record`) without them, so that its rows carry
#: neither the parent's paper and reference numbers (RecBole's BPR beside a user's BPR variant)
#: nor its note, as they do not before the study (``ZooConfig.inherited_from``)
_PARENTS_OWN = ("paper", "reference", "note")


def strip_sections(text: str, names: Sequence[str]) -> str:
    """``text`` (a zoo config's YAML) without its top-level sections ``names``, nor the comment
    lines right above each."""
    lines = text.splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if any(line.startswith(f"{n}:") for n in names):
            skipping = True
            while out and out[-1].startswith("#"):
                out.pop()
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def strip_tuned(text: str) -> str:
    """``text`` without its ``tuned:`` section (and the comment line written above it)."""
    lines = text.splitlines(keepends=True)
    out, skipping = [], False
    for i, line in enumerate(lines):
        if line.startswith("tuned:"):
            skipping = True
            if out and out[-1].startswith("# chosen by `kgzoo tune`"):
                out.pop()
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "".join(out)

"""Pretrained models by name: :func:`load_pretrained` gives a :class:`Pretrained`, ready to recommend.

Graph models rebuild their graph from the data: :func:`load_pretrained` builds the
DataModule with the manifest's protocol, checks that its fingerprint equals the
manifest's (:class:`FingerprintError` otherwise), builds the model with
:func:`kgzoo.create_model` (which attaches the model to ``dm``) and loads the verified
weights (:func:`kgzoo.hub.store.load_weights`).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import lightning as L
import torch
from safetensors.torch import save
from torch import Tensor

from ..api import create_datamodule, create_model  # importing api registers the built-in models
from ..data.download import sha256_bytes
from ..data.protocol import EvalProtocol
from ..data.datasets import saved_dataset
from ..data.impressions import ImpressionDataModule
from ..models.kgplm_news import KGPLMNews
from ..ops.csr import csr_rows, to_csr
from ..quiet import lightning_quiet
from ..registry import MODELS, PRETRAINED
from ..version import __version__
from .manifest import (MANIFEST_NAME, FingerprintError, PretrainedError, PretrainedSpec, check_name,
                       read_manifest, weights_spec, write_manifest_entry)
from .store import load_weights

#: which items a recommendation leaves out: every item the user interacted with in any split
#: (``"seen"``), the user's train items only (``"train"``), or none (``"none"``)
EXCLUDE = ("seen", "train", "none")
#: the default everywhere (``Pretrained.recommend``, ``export``, ``kgzoo recommend``/``export``): a
#: deployed recommender does not offer again what the user already interacted with, and the
#: interactions of the valid and test splits are such interactions too ("train" leaves them in:
#: a holdout notion of offline evaluation, which masks on its own)
DEFAULT_EXCLUDE = "seen"


def evaluate(model: Any, datamodule: Any, stage: str = "test") -> dict[str, float]:
    """Metrics of ``model`` on the ``stage`` ("test" or "valid") split, through a Lightning
    Trainer on CPU (no logger, no checkpoint; Lightning's notices dropped:
    :func:`kgzoo.quiet.lightning_quiet`). Returns ``{"test/ndcg@10": ..., ...}``.

    Raises:
        ValueError: ``stage`` other than ``"test"`` or ``"valid"``.
    """
    if stage not in ("test", "valid"):
        raise ValueError(f"stage must be 'test' or 'valid', got {stage!r}")
    with lightning_quiet():  # around the Trainer's construction too: it logs the device banner
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        run = trainer.test if stage == "test" else trainer.validate
        out = run(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in (out[0] if out else {}).items()}


def fp16_within(m16: dict[str, float], m32: dict[str, float], tolerance: float, users: int | None) -> bool:
    """Whether float16 weights keep the float32 metrics (the publishing rule of the shipped weights).

    Args:
        m16, m32: metrics (``{"test/ndcg@10": value}``) of the float16 and the float32 weights.
        tolerance: absolute change every metric must stay under (the publisher uses 0.001).
        users: the number of users the split evaluates, or ``None``. A hit rate may move by one
            user (``1 / users``), its resolution: one user's top-K gaining or losing a test item
            flips hit@K by exactly that much.

    Raises:
        KeyError: a key of ``m32`` missing from ``m16``.
    """
    for k in m32:
        d = abs(m16[k] - m32[k])
        if d < tolerance:
            continue
        if users and "/hit@" in k and d <= 1.0 / users + 1e-9:
            continue
        return False
    return True


def metrics_close(a: dict[str, float], b: dict[str, float], rel: float = 1e-6, abs_: float = 1e-12) -> list[str]:
    """Keys where ``a`` and ``b`` differ beyond ``rel`` relative tolerance (or one lacks a key)."""
    bad = [k for k in sorted(set(a) | set(b)) if k not in a or k not in b
           or not math.isclose(a[k], b[k], rel_tol=rel, abs_tol=abs_)]
    return bad


def json_safe(x: Any) -> Any:
    """``x`` as JSON holds it: tuples become lists, other objects their ``str``."""
    return json.loads(json.dumps(x, default=str))


def load_state(model: Any, state: dict[str, Tensor], what: str) -> None:
    """``model.load_state_dict(state, strict=True)`` (every key, every shape), cast to the
    model's dtypes (float16 weights into a float32 model).

    Raises:
        PretrainedError: missing, unexpected or misshapen tensors (naming ``what`` and the model).
    """
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PretrainedError(f"{what} do not fit model {type(model).__name__}: {e}") from None


class Pretrained:
    """A pretrained model with its dataset's id maps: raw ids in, raw ids and titles out.

    Attributes:
        name: ``"model/dataset"``. spec: the manifest entry (for :func:`~kgzoo.load_checkpoint`,
        one made from the checkpoint). model: the :class:`Recommender` (eval mode unless loaded
        with ``train=True``). datamodule: the :class:`KGRecDataModule` it was trained on (set up).
        user_ids, item_ids: the raw (source) ids as strings, index = kgzoo id (``str(i)`` where
        the dataset has no raw ids).
    """

    def __init__(self, spec: PretrainedSpec, model: Any, datamodule: Any) -> None:
        self.spec, self.name, self.model, self.datamodule = spec, spec.name, model, datamodule
        data = datamodule.data
        self.user_ids: list[str] = [str(u) for u in (data.user_ids or range(data.n_users))]
        self.item_ids: list[str] = [str(i) for i in (data.item_ids or range(data.n_items))]
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {u: i for i, u in enumerate(self.item_ids)}
        self._seen: tuple[Tensor, Tensor] | None = None

    def __repr__(self) -> str:
        return f"Pretrained({self.name!r}, {type(self.model).__name__}, metrics={self.spec.main_metric})"

    def user_index(self, raw_user_ids: Sequence[str | int]) -> Tensor:
        """LongTensor ``[len(raw_user_ids)]`` of kgzoo user ids for raw (source) user ids.

        Raises:
            KeyError: a raw id the dataset does not have.
        """
        return self._indices(self._user_index, raw_user_ids, "user")

    def item_index(self, raw_item_ids: Sequence[str | int]) -> Tensor:
        """LongTensor ``[len(raw_item_ids)]`` of kgzoo item ids for raw (source) item ids (news ids).

        Raises:
            KeyError: a raw id the dataset does not have.
        """
        return self._indices(self._item_index, raw_item_ids, "item")

    def _indices(self, index: dict[str, int], raw: Sequence[str | int], what: str) -> Tensor:
        missing = [u for u in raw if str(u) not in index]
        if missing:
            raise KeyError(f"{self.spec.dataset}: unknown {what} id(s) {', '.join(map(repr, missing[:5]))} "
                           f"(raw ids as in the source, e.g. {list(index)[:3]})")
        return torch.tensor([index[str(u)] for u in raw], dtype=torch.long)

    def exclusion(self, exclude: str = DEFAULT_EXCLUDE) -> tuple[Tensor, Tensor] | None:
        """The items not to recommend under the policy ``exclude`` (one of :data:`EXCLUDE`), as the
        CSR ``(indptr LongTensor [U+1], indices LongTensor [nnz])`` that
        :meth:`~kgzoo.models.base.Recommender.recommend` takes: :meth:`seen` for ``"seen"``, the
        train matrix ``datamodule.csr["train"]`` for ``"train"``, ``None`` for ``"none"``.

        Raises:
            ValueError: ``exclude`` not in :data:`EXCLUDE`.
        """
        if exclude not in EXCLUDE:
            raise ValueError(f"exclude={exclude!r}: expected one of {', '.join(map(repr, EXCLUDE))}")
        if exclude == "none":
            return None
        if exclude == "seen":
            return self.seen()
        dm = self.datamodule
        return dm.train_csr if isinstance(dm, ImpressionDataModule) else dm.csr["train"]

    def seen(self) -> tuple[Tensor, Tensor]:
        """CSR ``(indptr, indices)`` of every observed positive (user, item) pair (train, valid, test)."""
        if self._seen is None:
            data = self.datamodule.data
            x = data.interactions[data.positives()]
            self._seen = to_csr(x[:, 0], x[:, 1], data.n_users)
        return self._seen

    def save_pretrained(self, folder: str | Path, licence: str | None = None) -> Path:
        """Write the model as pretrained weights that :func:`load_pretrained` ``(folder)`` reads
        back: ``<model>__<dataset>.safetensors`` (the state dict in its dtypes, metadata ``name``,
        ``model``, ``dataset``, ``fingerprint``, ``kgzoo``) and ``manifest.json`` with its one entry
        (DESIGN.md, "Pretrained weights": model, dataset, protocol, KG ablation, fingerprint,
        main metric, metrics, hyper-parameters, DataModule arguments, sha256, size, dtype, licence;
        ``source``: where these weights came from; ``folder``: a user's dataset folder, absolute,
        from which :func:`load_pretrained` in another process registers the data again).

        Args:
            folder: created if missing; an earlier entry of the same name is replaced.
            licence: the entry's licence (default: this spec's, else "see the dataset's licence").

        Returns:
            The path of ``manifest.json``.

        Raises:
            PretrainedError: a name that is not ``model/dataset`` of plain parts (a dataset given
                as a path: save the model under a catalogue name).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        check_name(self.name)
        state = {k: v.detach().cpu().clone().contiguous() for k, v in self.model.state_dict().items()}
        blob = save(state, metadata={"name": self.name, "model": self.spec.model, "dataset": self.spec.dataset,
                                     "fingerprint": self.spec.fingerprint, "kgzoo": __version__})
        file = f"{self.spec.model}__{self.spec.dataset}.safetensors"
        (folder / file).write_bytes(blob)
        floats = {str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()}
        entry = {"model": self.spec.model, "dataset": self.spec.dataset, "protocol": dict(self.spec.protocol),
                 "kg_ablation": self.spec.kg_ablation, "fingerprint": self.spec.fingerprint,
                 "main_metric": self.spec.main_metric or getattr(self.model, "main_metric", None),
                 "metrics": dict(self.spec.metrics), "hparams": json_safe(self.spec.hparams), "data": dict(self.spec.data),
                 "file": file, "sha256": sha256_bytes(blob), "size": len(blob),
                 "dtype": floats.pop() if len(floats) == 1 else "mixed",
                 "params": int(sum(v.numel() for v in state.values())),
                 "licence": licence or self.spec.licence or f"see the licence of dataset {self.spec.dataset!r}",
                 "source": self.spec.extra.get("checkpoint") or self.spec.name, "kgzoo": __version__}
        data_folder = self.datamodule.state_dict().get("folder") if hasattr(self.datamodule, "state_dict") else None
        if data_folder:  # a user's dataset folder: load_pretrained registers it again from there
            entry["folder"] = data_folder
        path = folder / MANIFEST_NAME
        write_manifest_entry(path, self.name, entry)
        return path

    def title(self, item: int) -> str:
        text = self.datamodule.data.item_text
        return text[item] if text else ""

    def recommend(self, raw_user_ids: str | int | Sequence[str | int], k: int = 10, exclude: str = DEFAULT_EXCLUDE,
                  *, exclude_seen: bool | None = None
                  ) -> list[tuple[str, str, float]] | list[list[tuple[str, str, float]]]:
        """Top-``k`` items per user: ``(raw item id, title, score)``, best first (the full ranking
        of :meth:`~kgzoo.models.base.Recommender.recommend`).

        Args:
            raw_user_ids: one raw user id (``"196"`` or ``196``) or a sequence of them.
            k: list length. exclude: items left out (:meth:`exclusion`): ``"seen"`` (default:
                every item the user interacted with, in any split), ``"train"`` or ``"none"``;
                the same values and default as :func:`kgzoo.hub.export` and the ``kgzoo
                recommend``/``export`` commands.
            exclude_seen: deprecated (removed in the next release; also a bool given as the third
                positional argument, its old place): ``True`` is ``exclude="seen"``, ``False`` is
                ``exclude="none"``; a ``DeprecationWarning`` says so.

        Returns:
            For one id, a list of ``k`` tuples; for a sequence, one such list per id. A user with
            fewer than ``k`` items left after ``exclude`` gets those only (a shorter list, never an
            excluded item; :func:`kgzoo.hub.export`, whose table has ``k`` rows per user, refuses
            such a user instead).

        Raises:
            KeyError: an unknown raw user id. ValueError: ``k`` outside ``1..I``, a bad ``exclude``.
        """
        if isinstance(exclude, bool):  # the old third positional argument, exclude_seen
            exclude_seen, exclude = exclude, DEFAULT_EXCLUDE
        if exclude_seen is not None:
            warnings.warn("Pretrained.recommend(exclude_seen=...) is deprecated: use exclude='seen' (the default) "
                          "or exclude='none'", DeprecationWarning, stacklevel=2)
            exclude = "seen" if exclude_seen else "none"
        single = isinstance(raw_user_ids, (str, int))
        ids = [raw_user_ids] if single else list(raw_user_ids)
        scores, items = self.top_k(self.user_index(ids), k, exclude)
        out = self._listed(scores, items)
        return out[0] if single else out

    def _listed(self, scores: Tensor, items: Tensor) -> list[list[tuple[str, str, float]]]:
        # an excluded item scores -inf (Recommender.recommend): it ends a list longer than the user's candidates
        return [[(self.item_ids[i], self.title(i), s) for s, i in zip(srow.tolist(), irow.tolist()) if s > -math.inf]
                for srow, irow in zip(scores, items)]

    def top_k(self, users: Tensor, k: int, exclude: str = DEFAULT_EXCLUDE, batch_size: int = 1024
              ) -> tuple[Tensor, Tensor]:
        """``(scores FloatTensor [B, k], items LongTensor [B, k])`` of kgzoo user ids ``users``
        LongTensor ``[B]``, best first, the ``exclude`` items (:meth:`exclusion`) left out: what
        :meth:`recommend` and :func:`kgzoo.hub.export.export` list. A model that scores a user by
        the click history (the news models, ``uses_history``: they have no per-user score) ranks
        every news for the user's current history (:func:`rank_by_history`): on impressions the
        history of the user's last impression
        (:meth:`~kgzoo.data.impressions.ImpressionDataModule.user_histories`), on CTR rows the
        user's train clicks (:meth:`~kgzoo.data.datamodule.KGRecDataModule.histories`); any
        other model ranks by :meth:`~kgzoo.models.base.Recommender.recommend`.

        Raises:
            ValueError: ``k`` outside ``1..I``, a bad ``exclude``.
        """
        mask = self.exclusion(exclude)
        if not getattr(self.model, "uses_history", False):
            return self.model.recommend(users, k, exclude=mask, batch_size=batch_size)
        dm = self.datamodule
        hist = dm.user_histories(users) if isinstance(dm, ImpressionDataModule) else {**dm.histories(users), "user": users}
        return rank_by_history(self.model, hist, k, mask, batch_size)

    def rank_news(self, history: Sequence[str], k: int = 10, candidates: Sequence[str] | None = None,
                  user: str | int | None = None) -> list[tuple[str, str, float]]:
        """A news model's top-``k`` for a click history of raw news ids (a user the data may not
        know): ``(raw news id, title, score)``, best first, ranked among ``candidates`` (raw news
        ids; default every news but those of ``history``). The model's impression score
        (:meth:`~kgzoo.models.base.Recommender.impression_scores`), the last ``max_history`` clicks.

        Args:
            history: the clicked news, oldest first. k: list length. candidates: the news shown.
            user: a known raw user id, for a model that also reads the user's own vector
                (``kgplm-news``; the others read only the history).

        Raises:
            KeyError: a news id (or user id) the data does not have. ValueError: a model that does
                not score histories; ``kgplm-news`` without ``user``; ``k`` outside
                ``1..len(candidates)``.
        """
        if not getattr(self.model, "uses_history", False):
            raise ValueError(f"{self.name}: {type(self.model).__name__} does not score click histories "
                             "(rank_news is for the news models); use recommend(user)")
        if user is None and isinstance(self.model, KGPLMNews):
            raise ValueError(f"{self.name}: kgplm-news fuses the user's own vector with the history: give user=")
        hist = self.item_index(history)[-self.datamodule.max_history:]
        cand = self.item_index(candidates) if candidates is not None else None
        row = hist.view(1, -1) if hist.numel() else torch.zeros(1, 1, dtype=torch.long)
        batch = {"user": self.user_index([user]) if user is not None else torch.zeros(1, dtype=torch.long),
                 "history": row, "history_mask": torch.full(row.shape, bool(hist.numel()))}
        if cand is None:  # every news but the history's: a CSR of one row
            seen = hist.unique()
            scores, items = rank_by_history(self.model, batch, k, (torch.tensor([0, seen.numel()]), seen),
                                            user_rows=torch.zeros(1, dtype=torch.long))
        else:
            scores, items = rank_by_history(self.model, batch, k, None, candidates=cand)
        return self._listed(scores, items)[0]


#: floats a chunk of :func:`rank_by_history` may gather (rows x candidates x vector width): 128 MiB
HISTORY_SCORE_BUDGET = 2**25


def rank_by_history(model: Any, batch: dict[str, Tensor], k: int, exclude: tuple[Tensor, Tensor] | None = None,
                    batch_size: int = 256, candidates: Tensor | None = None, user_rows: Tensor | None = None
                    ) -> tuple[Tensor, Tensor]:
    """Top-``k`` news of a history model (``uses_history``) for click histories: every news (or
    ``candidates``) scored as the candidates of one impression per row
    (:meth:`~kgzoo.models.base.Recommender.impression_scores`), each news encoded once
    (``prepare_scoring``), in eval mode, without gradients.

    Args:
        model: a news model. batch: ``user [B]``, ``history [B, H]``, ``history_mask [B, H]``.
        k: list length. exclude: CSR ``(indptr, indices)`` over users of items left out (score
            ``-inf``), read at the rows ``user_rows`` LongTensor ``[B]`` (default ``batch["user"]``).
        batch_size: the most rows scored at once; fewer where ``rows x candidates x dim`` would pass
            :data:`HISTORY_SCORE_BUDGET` (a news model gathers a vector per candidate).
        candidates: LongTensor ``[C]`` ranked instead of every news (``exclude`` not applied).

    Returns:
        ``(scores FloatTensor [B, k], items LongTensor [B, k])``, best first.

    Raises:
        ValueError: ``k`` outside ``1..I``.
    """
    cand = torch.arange(model.n_items) if candidates is None else candidates
    if not 1 <= k <= cand.numel():
        raise ValueError(f"k={k} must be in 1..{cand.numel()} (the news ranked)")
    rows = batch["user"] if user_rows is None else user_rows
    batch_size = max(1, min(batch_size, HISTORY_SCORE_BUDGET // (cand.numel() * int(getattr(model, "dim", 256)))))
    was_training = model.training
    model.eval()
    model.prepare_scoring()
    values, indices = [], []
    try:
        with torch.no_grad():
            for s in range(0, rows.numel(), batch_size):
                part = {key: v[s:s + batch_size].to(model.device) for key, v in batch.items()}
                n = part["history"].shape[0]
                c = cand.to(model.device).expand(n, -1)
                scores = model.impression_scores({**part, "candidates": c,
                                                  "candidate_mask": torch.ones_like(c, dtype=torch.bool)}).float()
                if exclude is not None:
                    r, col = csr_rows(exclude[0], exclude[1], rows[s:s + batch_size].cpu())
                    scores[r, col] = float("-inf")
                top = torch.topk(scores, k, dim=1)
                values.append(top.values)
                indices.append(cand.to(model.device)[top.indices])
    finally:
        model.end_scoring()
        model.train(was_training)
    return torch.cat(values), torch.cat(indices)


def pretrained_spec(name: str | Path, manifest: str | Path | None = None) -> PretrainedSpec:
    """The manifest entry of ``name``: a folder written by :meth:`Pretrained.save_pretrained`
    (its ``manifest.json`` holds one entry; a string names a folder only where that file is
    there, a :class:`~pathlib.Path` always), else a name ``"model/dataset"`` of the package's
    manifest or of ``manifest`` (:func:`~kgzoo.hub.manifest.weights_spec`).

    Raises:
        PretrainedError: a folder without a ``manifest.json`` or with more than one entry; an
            invalid name. KeyError: an unknown name (with the nearest names).
    """
    folder = Path(name)
    if folder.is_dir() and (isinstance(name, Path) or (folder / MANIFEST_NAME).is_file()):
        entries = read_manifest(folder / MANIFEST_NAME)
        if len(entries) != 1:
            raise PretrainedError(f"{folder}: expected a {MANIFEST_NAME} with one entry (as save_pretrained writes), "
                                  f"found {len(entries)}" + (f": {', '.join(sorted(entries))}" if entries else ""))
        return next(iter(entries.values()))
    return weights_spec(str(name), manifest)


def load_pretrained(name: str | Path, datamodule: Any = None, root: str | None = None,
                    manifest: str | Path | None = None, cache_dir: str | Path | None = None, download: bool = True,
                    device: str = "cpu", train: bool = False) -> Pretrained:
    """Load pretrained weights by name (or from a folder written by :meth:`Pretrained.save_pretrained`),
    ready to ``recommend``, or to train on with ``train=True``.

    Args:
        name: ``"model/dataset"`` (:func:`list_pretrained`) or a folder (:func:`pretrained_spec`).
        datamodule: reuse this DataModule (its fingerprint must match); default: build one
            from the manifest's dataset, protocol and DataModule arguments.
        root: data root for the dataset (default ``$KGZOO_DATA_DIR`` or the user cache).
        manifest: read the entry from this manifest file instead of the package's.
        cache_dir: cache of downloaded weights (default :func:`kgzoo.paths.cache_dir` ``("hub")``).
        device: where the model goes.
        train: leave the model in train mode (dropout on, as ``model.train()``; the habit of
            timm's ``create_model(pretrained=True)``) to go on training it, e.g.
            ``lightning.Trainer().fit(pre.model, datamodule=pre.datamodule)``; default eval mode.

    Returns:
        :class:`Pretrained` (``.model`` in eval mode unless ``train``, ``.datamodule``, ``.recommend``).

    Raises:
        PretrainedError: an invalid name; an entry whose model is not registered; weights
            that do not fit the model. KeyError: an unknown name (with the nearest names).
        ChecksumError: a file whose size or sha256 differs from the manifest (naming it).
        FingerprintError: data or protocol that differ from the ones the weights were trained on (naming
            the KG ablation or protocol where those differ).
    """
    spec = pretrained_spec(name, manifest)
    name = spec.name
    if spec.model not in MODELS:
        close = MODELS.suggest(spec.model)
        raise PretrainedError(f"manifest entry {name!r} names model {spec.model!r}, which is not registered"
                              + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
                              + f"; registered: {', '.join(MODELS.list())}")
    state = load_weights(spec, cache_dir, download)  # checksum first: nothing else runs on a bad file
    if datamodule is None:
        try:
            protocol = EvalProtocol.from_dict(spec.protocol)
        except TypeError as e:
            raise PretrainedError(f"manifest entry {name!r}: bad protocol {spec.protocol} ({e})") from None
        datamodule = create_datamodule(saved_dataset(spec.dataset, spec.extra.get("folder")), root=root,
                                       protocol=protocol, kg_ablation=spec.kg_ablation, **spec.data)
    elif datamodule.dataset != spec.dataset:
        raise FingerprintError(f"{name!r} was trained on {spec.dataset!r}, the DataModule holds {datamodule.dataset!r}")
    datamodule.setup()
    if datamodule.fingerprint != spec.fingerprint:
        differ = [f"{what}: the weights' {ours!r}, the DataModule's {theirs!r}" for what, ours, theirs in (
            ("kg_ablation", spec.kg_ablation, getattr(datamodule, "kg_ablation_kind", spec.kg_ablation)),
            ("protocol", json_safe(spec.protocol), json_safe(datamodule.protocol.to_dict()))) if ours != theirs]
        raise FingerprintError(f"{name!r}: the data fingerprint {datamodule.fingerprint} differs from the manifest's "
                               f"{spec.fingerprint} (" + ("; ".join(differ) if differ else
                                                          "other data files or metric code") + ")")
    model = create_model(spec.model, datamodule=datamodule, config=False, state=state, **spec.hparams)
    load_state(model, state, f"weights of {name!r}")
    model.to(device)
    model.train(train)
    return Pretrained(spec, model, datamodule)


__all__ = ["DEFAULT_EXCLUDE", "EXCLUDE", "Pretrained", "evaluate", "json_safe", "list_pretrained", "load_pretrained", "load_state", "metrics_close",
           "pretrained_spec"]

"""Self-describing checkpoints: :func:`load_checkpoint` rebuilds a model and its data from a
checkpoint file alone (DESIGN.md, "Recommender").

Every checkpoint a kgzoo model writes through Lightning (``kgzoo bench``, ``kgzoo tune``,
``kgzoo fit``, a user's own Trainer) carries ``checkpoint["kgzoo"]``
(:meth:`kgzoo.models.base.Recommender.on_save_checkpoint`): the registered model name and
import path, the hyper-parameters, the fingerprint of the data it was trained on, the
DataModule's identity (dataset, protocol, KG ablation, seed, batch sizes) and kgzoo's version.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ..api import attach, create_datamodule, create_datamodule_for, create_model
from ..data.datasets import saved_dataset
from ..data.download import sha256_file
from ..data.link import KGLinkDataModule
from ..data.protocol import check_fingerprint, protocol_fields
from ..data.readers._io import MIN_TEXT_MATCH
from ..models.base import SIZE_KEYS
from ..registry import MODELS, load_plugins
from .manifest import PretrainedError, PretrainedSpec
from .pretrained import Pretrained, load_pretrained, load_state
from .update import Update, extended_datamodule, read_update, update_model, write_checkpoint

CHECKPOINT_FORMAT = 1


def checkpoint_meta(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a Lightning checkpoint with ``torch.load(weights_only=True)`` (tensors and plain
    types only: no pickled code runs).

    Returns:
        ``(checkpoint, meta)``: the whole checkpoint dict and its ``"kgzoo"`` entry (``format``,
        ``kgzoo``, ``model``, ``class_path``, ``hparams``, ``fingerprint``, ``data``).

    Raises:
        FileNotFoundError: no such file. PretrainedError: not a checkpoint torch can read, no
            ``"kgzoo"`` entry (written by kgzoo before checkpoints described themselves, or by
            another model class), or a newer format than this kgzoo reads.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p}: no such file")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises several kinds for a file that is not a checkpoint)
        raise PretrainedError(f"checkpoint {p}: not a checkpoint torch can read ({type(e).__name__}: {e})") from None
    meta = ckpt.get("kgzoo") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict):
        raise PretrainedError(f"checkpoint {p} has no 'kgzoo' entry (written by a kgzoo older than self-describing "
                              "checkpoints, or not by a kgzoo model): build the model with create_model and "
                              "load its 'state_dict' yourself")
    if int(meta.get("format", 0)) > CHECKPOINT_FORMAT:
        raise PretrainedError(f"checkpoint {p}: format {meta.get('format')} is newer than this kgzoo reads "
                              f"({CHECKPOINT_FORMAT}); written by kgzoo {meta.get('kgzoo')}")
    return ckpt, meta


def model_name(meta: dict[str, Any]) -> str:
    """The registered name of a checkpoint's model: ``meta["model"]`` where registered, else the
    name under which importing the module of ``meta["class_path"]`` registers the class (a
    user's plugin model).

    Raises:
        PretrainedError: the class is neither registered nor importable, or importing it
            registers nothing.
    """
    name = meta.get("model")
    if name and name in MODELS:
        return name
    module, _, qualname = str(meta.get("class_path") or "").rpartition(".")
    try:
        cls = getattr(load_plugins([module], entry_points=False)[0], qualname)
    except (ImportError, AttributeError, ValueError, IndexError) as e:
        raise PretrainedError(f"checkpoint model {name!r} is not registered and its class {meta.get('class_path')!r} "
                              f"cannot be imported ({e}); pass --import MODULE (or import it first)") from None
    found = MODELS.name_of(cls)
    if found is None:
        raise PretrainedError(f"checkpoint class {meta.get('class_path')!r} is not a registered model "
                              "(@register_model)")
    return found


def datamodule_arguments(data: dict[str, Any]) -> dict[str, Any]:
    """The DataModule constructor arguments a checkpoint's ``data`` entry
    (``KGRecDataModule.state_dict()``) gives: ``dataset``, ``protocol`` (a dict of the constructor's
    fields, :func:`kgzoo.data.protocol.protocol_fields`), ``kg_ablation``, ``seed`` and the batch
    sizes. A user's dataset that this process has not registered is given by its ``folder`` (registered again from the path; the caller checks the contents' fingerprint).

    Raises:
        PretrainedError: an entry without a dataset (the checkpoint was written without a
            DataModule).
    """
    if not data.get("dataset"):
        raise PretrainedError("the checkpoint was written without a DataModule, so it does not say its data; "
                              "pass datamodule=")
    protocol = data.get("protocol")  # the constructor's fields: a cold_item record holds the derived candidates
    return {"dataset": saved_dataset(data["dataset"], data.get("folder")),
            "protocol": protocol_fields(protocol) if protocol is not None else None,
            "kg_ablation": data.get("kg_ablation", "real"), "seed": data.get("seed"),
            **{k: data[k] for k in ("batch_size", "eval_batch_size", "kg_batch_size", "max_history") if k in data}}


def datamodule_from(data: dict[str, Any], root: str | None = None) -> Any:
    """The DataModule a checkpoint's ``data`` entry describes (:func:`datamodule_arguments`), built
    again; a KG link-prediction model's (``link`` in the entry) wraps it in its triple DataModule;
    an updated model's (``update`` in the entry) is its base's extended again
    (:func:`kgzoo.hub.update.extended_datamodule`).

    Raises:
        PretrainedError: see :func:`datamodule_arguments`. KeyError: a dataset this machine does not
        know (with suggestions). FileNotFoundError: a user's folder that is gone.
    """
    if data.get("update"):  # an updated model's data: its base's, extended (kgzoo update)
        return extended_datamodule(data, datamodule_from(data["update"]["base"], root))
    args = datamodule_arguments(data)
    base = create_datamodule(args.pop("dataset"), root=root, **args)
    link = data.get("link")
    return KGLinkDataModule(base, **link) if link else base


def load_checkpoint(path: str | Path, datamodule: Any = None, root: str | None = None, device: str = "cpu",
                    train: bool = False) -> Pretrained:
    """Rebuild model and data from a kgzoo checkpoint alone (``kgzoo bench``, ``tune``, ``fit``).

    The DataModule is built from the checkpoint's data entry (or ``datamodule`` is used), its
    fingerprint checked against the checkpoint's, the model built with its saved
    hyper-parameters by :func:`kgzoo.create_model` and joined to the data
    (:func:`kgzoo.api.attach`: graph buffers rebuilt, KG or text pre-computations from the
    cache), then the weights loaded strictly.

    Args:
        path: a ``.ckpt`` file. datamodule: the data to attach to (a ``KGRecDataModule``; a
            link-prediction model is given its triple DataModule over it). root: data root for
            a rebuilt DataModule. device: where the model goes.
        train: leave the model in train mode (dropout on) to go on training; default eval mode.

    Returns:
        A :class:`~kgzoo.hub.Pretrained` named ``"model/dataset"`` (``spec.extra["checkpoint"]``
        the path, ``spec.sha256`` the file's); ``.model``, ``.datamodule``, ``.recommend``.

    Raises:
        FileNotFoundError: no such file. PretrainedError: see :func:`checkpoint_meta` and
            :func:`model_name`; weights that do not fit the model.
        FingerprintError: data whose fingerprint differs from the checkpoint's (naming both).
    """
    p = Path(path)
    ckpt, meta = checkpoint_meta(p)
    name = model_name(meta)
    data = dict(meta.get("data") or {})
    dm = datamodule if datamodule is not None else datamodule_from(data, root)
    base = dm.base if isinstance(dm, KGLinkDataModule) else dm
    hparams = {k: v for k, v in (meta.get("hparams") or {}).items() if k not in SIZE_KEYS and not k.startswith("_")}
    model = create_model(name, datamodule=base, config=False, state=ckpt["state_dict"], **hparams)
    dm = dm if isinstance(dm, KGLinkDataModule) else create_datamodule_for(model, dm)
    dm.setup()
    check_fingerprint({**data, "fingerprint": data.get("fingerprint") or meta.get("fingerprint")}, dm.fingerprint,
                      dm.dataset)
    attach(model, dm, state=ckpt["state_dict"])
    load_state(model, ckpt["state_dict"], f"checkpoint {p}")
    model.to(device)
    model.train(train)
    dataset = str(data.get("dataset") or dm.dataset)
    spec = PretrainedSpec(name=f"{name}/{dataset}", model=name, dataset=dataset,
                          protocol=dict(data.get("protocol") or dm.protocol.to_dict()), fingerprint=dm.fingerprint,
                          metrics={}, hparams=hparams, sha256=sha256_file(p), size=p.stat().st_size, licence="",
                          base_dir=p.parent, main_metric=getattr(model, "main_metric", None),
                          kg_ablation=str(data.get("kg_ablation", "real")),
                          data={k: data[k] for k in ("batch_size", "eval_batch_size", "kg_batch_size", "max_history") if k in data},
                          extra={"checkpoint": str(p), "epoch": ckpt.get("epoch"), "kgzoo": meta.get("kgzoo")})
    return Pretrained(spec, model, base)


def open_model(source: str | Path, root: str | None = None, manifest: str | Path | None = None) -> Pretrained:
    """A trained model by what the user has: a checkpoint file (:func:`kgzoo.load_checkpoint`),
    a folder written by :meth:`Pretrained.save_pretrained` or a pretrained name ``model/dataset``
    (:func:`kgzoo.load_pretrained`).

    Raises:
        FileNotFoundError: ``source`` reads as a path (a ``.ckpt`` name, a leading ``.``, ``~`` or
            ``/``, or another number of ``/`` than a name's one) and is no file or folder.
        As :func:`kgzoo.load_checkpoint` and :func:`kgzoo.load_pretrained`.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return load_checkpoint(source, root=root)
    text = str(source)
    if not path.is_dir() and (text.endswith(".ckpt") or text.startswith((".", "~", "/")) or text.count("/") != 1):
        raise FileNotFoundError(f"{text!r} does not exist: no checkpoint file, no folder of saved weights "
                                "(and no pretrained name 'model/dataset': `kgzoo pretrained` lists those)")
    return load_pretrained(text, root=root, manifest=manifest)


def update_checkpoint(ckpt_path: str | Path, data: Sequence[str | Path], out: str | Path, epochs: int = 0,
                      replay: float = 1.0, seed: int = 0, min_text_match: float = MIN_TEXT_MATCH,
                      name: str | None = None, root: str | None = None) -> tuple[Path, Update]:
    """``kgzoo update``: load a trained model (:func:`open_model`: a checkpoint
    file, a folder of :meth:`Pretrained.save_pretrained` or a pretrained name ``model/dataset``),
    fold in the tables of ``data`` (:func:`kgzoo.hub.update.read_update`,
    :func:`kgzoo.hub.update.update_model`) and write ``<out>/update.ckpt``
    (:func:`kgzoo.hub.update.write_checkpoint`), whose base data entry is the checkpoint's (or, for
    weights, their DataModule's ``state_dict()``, the entry a checkpoint of them would hold).

    Returns:
        ``(checkpoint path, Update)``.

    Raises:
        as :func:`open_model`, :func:`kgzoo.hub.update.read_update` and
        :func:`kgzoo.hub.update.update_model`.
    """
    frames, origins, files = read_update(data)
    pre = open_model(ckpt_path, root=root)
    base = (dict(checkpoint_meta(ckpt_path)[1].get("data") or {}) if Path(ckpt_path).expanduser().is_file()
            else pre.datamodule.state_dict())
    up = update_model(pre.model, pre.datamodule, **frames, name=name, epochs=epochs, replay=replay, seed=seed,
                      min_text_match=min_text_match, origins=origins)
    entry = {"base": base, "files": files, "name": up.datamodule.dataset,
             "sha256": {role: sha256_file(f) for role, f in files.items()},
             "min_text_match": min_text_match, "epochs": epochs, "replay": replay, "seed": seed}
    path = write_checkpoint(up.model, up.datamodule, Path(out) / "update.ckpt", entry)
    return path, up


__all__ = ["CHECKPOINT_FORMAT", "checkpoint_meta", "datamodule_arguments", "datamodule_from", "load_checkpoint",
           "model_name", "open_model", "update_checkpoint"]

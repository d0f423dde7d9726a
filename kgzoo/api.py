"""The public entry points: create a DataModule, create a model, attach one to the other
(DESIGN.md, "Registry" and "Graphs"). Assembly only: config -> sizes + hyper-parameters ->
``model.attach(graphs, extras)``; the task of a model decides its DataModule here."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Iterable

from .config import ZooConfig, parse_number
from .data.datamodule import KGRecDataModule
from .data.datasets import dataset_spec, resolve_dataset
from .data.impressions import ImpressionDataModule
from .data.link import KGLinkDataModule
from .data.protocol import EvalProtocol
from .data.spec import DatasetSpec
from .models import Recommender  # importing the package registers the built-in models
from .models.base import SIZE_KEYS
from .pretrain.kg_vectors import GrownKGVectors, KGVectors
from .pretrain.text_vectors import TextVectors
from .protocols import datamodule_protocol_key
from .registry import MODELS
from .tasks import get_task, model_task


def list_models(pattern: str = "*", **meta: Any) -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (``"kg*"``) and metadata
    (``family="kg-gnn"``)."""
    return MODELS.list(pattern, **meta)


def model_hparams(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor arguments a model class accepts, by name (the keys a config, a bench
    variant or ``create_model`` may set).

    The class's own named arguments; where its ``__init__`` takes ``**kwargs`` (a user's
    subclass ``def __init__(self, extra=1, **kwargs)``), those of the next class in its MRO, and
    so on; always those of :class:`Recommender`. A subclass's argument shadows its parent's.
    """
    params: dict[str, inspect.Parameter] = {}
    for c in cls.__mro__:
        if "__init__" not in vars(c):
            continue  # inherits its parent's __init__: look there
        more = False
        for n, p in inspect.signature(c.__init__).parameters.items():
            if p.kind == p.VAR_KEYWORD:
                more = True
            elif n != "self" and p.kind != p.VAR_POSITIONAL:
                params.setdefault(n, p)
        if not more or c is Recommender:
            break
    for n, p in inspect.signature(Recommender.__init__).parameters.items():
        if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            params.setdefault(n, p)
    return params


#: the value types of the simple annotations of model hyper-parameters (``"float"``, ``"int | None"``)
_HPARAM_TYPES: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


def check_hparams(name: str, cls: type, values: dict[str, Any], where: str = "") -> None:
    """Refuse hyper-parameters a model cannot take before it is built, naming them: a key its
    constructor does not take (with the keys it does), and a value of the wrong type, where a
    typo (``lr=abc``, ``embedding_dim=12.5``) would otherwise fail deep inside torch (``'<='
    not supported between 'float' and 'str'``). The one check of :func:`create_model` and of
    ``kgzoo bench --variants`` (:func:`kgzoo.bench.cells.resolve_grid`).

    Types are checked against the annotation of the constructor argument (:func:`model_hparams`)
    where it is one of ``float`` (an int is accepted), ``int``, ``bool``, ``str``, or such a type
    ``| None``; a bool is not a number here. Other annotations (``Sequence[int]``, ...) are left
    to the model.

    Args:
        name: the model's registered name (for the message). cls: its class.
        values: hyper-parameter name -> value. where: a prefix for the message (``"variant 'lr=abc': "``).

    Raises:
        ValueError: a key the model does not take, or a value whose type the annotation does not admit.
    """
    known = check_hparam_names(name, cls, values, where)
    for key, value in values.items():
        ann = known[key].annotation
        if not isinstance(ann, str):
            ann = getattr(ann, "__name__", None)
        parts = [p.strip() for p in ann.split("|")] if isinstance(ann, str) else []
        if not parts or any(p not in _HPARAM_TYPES and p != "None" for p in parts):
            continue
        if value is None:
            ok = "None" in parts
        else:
            ok = any(isinstance(value, _HPARAM_TYPES[p]) and (p == "bool" or not isinstance(value, bool))
                     for p in parts if p != "None")
        if not ok:
            hint = ""
            if isinstance(value, str) and parse_number(value) is not None:  # PyYAML reads 1e-3 (no dot) as text
                hint = f"; YAML reads {value} without a dot as text: write it {float(value)!r}"
            raise ValueError(f"{where}model {name!r}: hyper-parameter {key!r} takes {ann}, got {value!r} "
                             f"({type(value).__name__}){hint}")


def check_hparam_names(name: str, cls: type, names: Iterable[str], where: str = "") -> dict[str, inspect.Parameter]:
    """Refuse names that are no hyper-parameter of model ``cls`` (:func:`model_hparams`), the
    keys half of :func:`check_hparams` (a ``tune:`` space's names, whose values are ranges).

    Returns:
        :func:`model_hparams` of ``cls``.

    Raises:
        ValueError: ``"<where>model 'm' takes no hyper-parameter 'x'; known: ... (did you mean
            'y'?)"`` (the known names less the sizes the data gives, ``SIZE_KEYS``), the nearest
            known names (:mod:`difflib`) where there are any.
    """
    known = model_hparams(cls)
    unknown = sorted(set(names) - set(known))
    if unknown:
        settable = sorted(k for k in known if k not in SIZE_KEYS)  # the sizes come from the data, never a config
        close = [c for u in unknown for c in difflib.get_close_matches(u, settable, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"{where}model {name!r} takes no hyper-parameter {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(settable)}{hint}")
    return known


def check_config(name: str, cls: type, cfg: ZooConfig) -> None:
    """Refuse a zoo config whose hyper-parameters model ``cls`` cannot take, naming the file and
    the section: its ``model`` section as written (:attr:`ZooConfig.defaults`), its
    ``tuned.params`` and the names its ``tune:`` space searches. Called before anything trains
    (``kgzoo bench``'s grid, ``kgzoo tune`` before its first trial, :func:`create_model`), so a
    typo (``reg_weigth``) in a config of one's own is one error naming the file, not a failed
    cell or a tuning budget of failed trials.

    Raises:
        ValueError: ``"<file>: model: model 'm' takes no hyper-parameter ..."`` (also
            ``tuned.params:``, ``tune:``), a size the data gives (``SIZE_KEYS``: ``n_items``, which
            :func:`create_model` would put over the DataModule's), or a value of another type
            than its argument's (:func:`check_hparams`).
    """
    tuned = cfg.tuned or {}
    source = f" (from {tuned['dataset']})" if tuned.get("dataset") else ""
    params = dict(tuned.get("params") or {})
    model_at, tuned_at = f"{cfg.path}: model: ", f"{cfg.path}: tuned{source}.params: "
    tune_at = f"{cfg.tune_path or cfg.path}: tune: "
    for names, where in ((cfg.defaults, model_at), (params, tuned_at), (cfg.tune, tune_at)):
        sizes = sorted(set(names) & set(SIZE_KEYS))  # create_model puts a config's values over the data's sizes
        if sizes:
            raise ValueError(f"{where}model {name!r} takes {', '.join(map(repr, sizes))} from the data, never from "
                             "a config: remove it")
    check_hparams(name, cls, cfg.defaults, where=model_at)
    check_hparams(name, cls, params, where=tuned_at)
    check_hparam_names(name, cls, cfg.tune, where=tune_at)


def create_datamodule(name: str = "ml-100k-kg", root: str | None = None, protocol: EvalProtocol | dict | None = None,
                      **kwargs: Any) -> KGRecDataModule | ImpressionDataModule:
    """A :class:`KGRecDataModule` for dataset ``name``: a catalogue or registered name, the path
    of a folder of one's own files (layout detected, :mod:`kgzoo.data.folders`), or the
    :class:`~kgzoo.data.spec.DatasetSpec` that :func:`kgzoo.from_frames` returns; for a protocol
    of the ``impression`` task (given, or the dataset's default: a folder in MIND's layout) an
    :class:`~kgzoo.data.impressions.ImpressionDataModule`.

    Args:
        protocol: an :class:`EvalProtocol`, a dict of its fields, or ``None`` for the
            dataset's default. **kwargs: DataModule arguments (batch sizes, ``kg_ablation``).

    Raises:
        KeyError: unknown dataset (with suggestions). ValueError: bad protocol fields, an
            impression protocol for a dataset without impressions.
        DataFormatError: a folder that matches no layout, or a malformed file in it.
    """
    if isinstance(protocol, dict):
        protocol = EvalProtocol.from_dict(protocol)  # a record of to_dict (a checkpoint's) too
    if protocol is None and not isinstance(name, DatasetSpec):  # the dataset's default (a MIND folder: impressions)
        name = resolve_dataset(name)
        protocol = dataset_spec(name).protocol
    if protocol is not None and get_task(protocol.task).data == "impressions":
        return ImpressionDataModule(name, root=root, protocol=protocol, **kwargs)
    return KGRecDataModule(name, root=root, protocol=protocol, **kwargs)


def has_nothing_to_train(model: Any) -> bool:
    """Whether ``model`` (a ``torch.nn.Module``) has no parameter with ``requires_grad`` (Pop,
    news-plm-mean): its one epoch over the training data is its whole fit (a closed form), without
    an optimiser step; a bench cell, DDP and ``kgzoo update`` treat it so. Here, not on the model
    classes, so that no model's code hash changes."""
    return not any(p.requires_grad for p in model.parameters())


#: where the README shows a user's model, named by the errors of :func:`check_model_class`
NEW_MODEL_SECTION = "README, 'A new model against the baselines'"


def check_model_class(name: str, cls: type) -> None:
    """Refuse a registered model class that lacks the math every kgzoo task asks of a
    :class:`~kgzoo.models.base.Recommender`: its own ``loss(batch)`` and a way to score
    (``score(users)`` or ``final_embeddings()``; every built-in model has both), before any data
    is read or any cell trains, naming what to write. Without it a user's model failed its cell
    with "X does not support top-K scoring", or a bare ``NotImplementedError`` from the base class.

    Raises:
        ValueError: ``cls`` is a Recommender that inherits the base class's ``loss``, or both its
            ``score`` and ``final_embeddings``; the message names the class and the methods with
            their tensor shapes.
    """
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        return
    where = f"model {name!r} ({cls.__module__}.{cls.__qualname__})"
    if cls.loss is Recommender.loss:
        raise ValueError(f"{where} defines no loss(batch): a Recommender returns its scalar training loss of a batch "
                         "(on top-K data: user, pos_item, neg_item LongTensors [B]) from loss(batch) "
                         f"({NEW_MODEL_SECTION})")
    if cls.score is Recommender.score and cls.final_embeddings is Recommender.final_embeddings:
        raise ValueError(f"{where} cannot score: it defines neither final_embeddings() (users FloatTensor [U, d], "
                         "items FloatTensor [I, d], ranked by inner product) nor score(users) (users LongTensor [B] "
                         f"-> FloatTensor [B, I]) ({NEW_MODEL_SECTION})")


def create_model(name: str, datamodule: KGRecDataModule | None = None, config: bool | ZooConfig = True,
                 sizes: dict[str, Any] | None = None, state: dict[str, Any] | None = None,
                 **overrides: Any) -> Any:
    """Build model ``name`` for ``datamodule``.

    Hyper-parameters: the zoo config of the model on that dataset under the DataModule's protocol
    (``config=True``: where the DataModule splits by another protocol than the dataset's default,
    such as the cold-item split, the values ``kgzoo tune --protocol`` chose there,
    :func:`kgzoo.protocols.datamodule_protocol_key`; else the dataset file's; a
    :class:`~kgzoo.config.ZooConfig` given as ``config``: that one), then ``overrides``. Sizes
    (users, items, entities, relations, task) come from the DataModule
    (or ``sizes``). With a DataModule the model is attached to it (:func:`attach`; ``state``:
    the weights the caller loads next, see there).

    Raises:
        KeyError: unknown model (with the nearest names).
        ValueError: a hyper-parameter the model does not take (naming it and the known ones), or
            a value of another type than its argument's (:func:`check_hparams`); in the zoo
            config, naming its file and section (:func:`check_config`); a model class without
            its ``loss`` or a way to score (:func:`check_model_class`).
    """
    cls = MODELS.get(name)
    check_model_class(name, cls)
    if datamodule is not None:
        # the DataModule the model's task trains on: a news model's impression view (its sizes are
        # that view's), a link model's triple split (TransR's TransE sees its train part only)
        datamodule = create_datamodule_for(cls, datamodule)
    dataset = datamodule.dataset if datamodule is not None else None
    hp: dict[str, Any] = {}
    if isinstance(config, ZooConfig) or config:
        cfg = config if isinstance(config, ZooConfig) else ZooConfig.load(
            name, dataset, protocol=datamodule_protocol_key(name, datamodule) if datamodule is not None else "")
        check_config(name, cls, cfg)
        hp.update(cfg.model)
    check_hparams(name, cls, overrides)
    hp.update(overrides)
    known = model_hparams(cls)
    kwargs = dict(datamodule.model_kwargs() if datamodule is not None else (sizes or {}))
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    kwargs.update(hp)
    model = cls(**kwargs)
    if datamodule is not None:
        attach(model, datamodule, state=state)
    return model


def create_datamodule_for(model: Any, datamodule: Any) -> Any:
    """The DataModule ``model`` trains and tests on, chosen by its task
    (:attr:`kgzoo.tasks.Task.data`): ``datamodule`` itself for a task that trains on
    interactions, a :class:`~kgzoo.data.link.KGLinkDataModule` over it for one that trains on
    KG triples (link prediction), the :class:`~kgzoo.data.impressions.ImpressionDataModule` of
    the dataset (made once per base, :meth:`~kgzoo.data.impressions.ImpressionDataModule.from_base`)
    for one that trains on impressions (NRMS, DKN). The model's task is
    :func:`kgzoo.tasks.model_task`: a news model (``tasks = ("impression", "ctr")``) runs on
    impressions where the dataset has an impression log (MIND), else on the DataModule's CTR rows
    (DKN's Bing News). Idempotent: a DataModule already of the right kind is returned. ``model``
    may be a model class.

    Raises:
        KeyError: the model's task is unknown. ValueError: a news model on data with neither an
            impression log nor CTR rows.
    """
    data = get_task(model_task(model, getattr(datamodule, "task", "topk"), has_impressions(datamodule))).data
    if data == "triples" and not isinstance(datamodule, KGLinkDataModule):
        return KGLinkDataModule(datamodule)
    if data == "impressions" and not isinstance(datamodule, ImpressionDataModule):
        return ImpressionDataModule.from_base(datamodule)
    return datamodule


def has_impressions(datamodule: Any) -> bool:
    """Whether ``datamodule`` serves impressions or is a catalogue dataset's DataModule whose
    entry reads an impression log (``DatasetSpec.impressions``; a user's folder in MIND's
    layout registers one too)."""
    if isinstance(datamodule, ImpressionDataModule):
        return True
    spec = getattr(datamodule, "spec", None)
    return spec is not None and getattr(spec, "impressions", None) is not None


def pretrain_extras(model: Any, datamodule: Any) -> dict[str, Any]:
    """The cached pre-computations ``model`` asks for (``model.pretrain_requests()``, absent:
    none), as lazy objects for ``attach``'s ``extras``:

    - ``"text_vectors"``: the encoder's identity (``model``, ``pooling``, ``normalize``,
      ``max_length``, ``batch_size``, ``cache_dir``) -> :class:`~kgzoo.pretrain.text_vectors.TextVectors`
      of the dataset's item texts (``""`` for every item of a dataset without text);
    - ``"kg_vectors"``: ``{"model": name, "epochs": n, "overrides": {...}}`` ->
      :class:`~kgzoo.pretrain.kg_vectors.KGVectors` of that registered KG embedding model with
      its zoo config on the dataset plus ``overrides``, the config's ``data.batch_size`` (else
      the DataModule's), seeded with the DataModule's seed; omitted when the KG has no triples.
      For a model on a link-prediction split (a :class:`~kgzoo.data.link.KGLinkDataModule`:
      TransR initialised from TransE) it is trained on the split's train triples only. On the
      extended data of an incremental update (``datamodule.extended_from``: base DataModule and
      growth) it is the base's vectors grown to the extension
      (:class:`~kgzoo.pretrain.kg_vectors.GrownKGVectors`: old rows unchanged, new rows fitted),
      unless the base's KG had no triples.

    Raises:
        KeyError: an unknown request or model name.
    """
    requests = getattr(model, "pretrain_requests", None)
    requests = requests() if callable(requests) else {}
    extras: dict[str, Any] = {}
    for kind, req in requests.items():
        if kind == "text_vectors":
            graphs = datamodule.graphs()
            texts = graphs.item_text if graphs.item_text is not None else [""] * graphs.n_items
            extras[kind] = TextVectors(texts, **req)
            continue
        if kind != "kg_vectors":
            raise KeyError(f"{type(model).__name__}.pretrain_requests: unknown pre-computation {kind!r}; "
                           "known: text_vectors, kg_vectors")
        link = datamodule if isinstance(datamodule, KGLinkDataModule) else None
        base = link.base if link is not None else datamodule
        base.setup()
        if base.data.triples.shape[0] == 0:
            continue
        grown = getattr(datamodule, "extended_from", None)
        if grown is not None:
            before = pretrain_extras(model, grown[0]).get(kind)
            if before is not None:
                extras[kind] = GrownKGVectors(before, datamodule, grown[1])
                continue
        name = req["model"]
        cfg = ZooConfig.load(name, base.dataset)
        hp = {**cfg.model, **req.get("overrides", {})}
        batch = int(cfg.data.get("batch_size") or base.batch_size)
        extras[kind] = KGVectors(base, name, MODELS.get(name), hp, epochs=int(req["epochs"]),
                                 seed=int(datamodule.seed), batch_size=batch, link=link)
    return extras


def attach(model: Any, datamodule: Any, state: dict[str, Any] | None = None) -> None:
    """Join a built model and its DataModule (the one verb): the DataModule adapts its batches
    to the model (:meth:`~kgzoo.data.datamodule.KGRecDataModule.adapt_to`: KG batches for a
    model with a KG loss), then ``model.attach(datamodule.graphs(), extras)`` with the
    pre-computations of :func:`pretrain_extras`. Used by :func:`create_model`, ``kgzoo fit``
    and the bench; a second call with the same data changes nothing.

    ``state``: the weights the caller loads next (a checkpoint's or pretrained state dict,
    ``{name: Tensor}``). Its entries that fit the model as built (same name and shape) are
    copied in first and the model is attached without pre-computations, so the tables those
    weights carry (a KGPLM's or DKN's TransE vectors, a text tower's PLM vectors: a model keeps
    the ones it holds when none are handed in) are not computed again only to be overwritten.
    Where the weights lack one the model needs (its attach raises ``RuntimeError``: nothing
    held), the model is attached with :func:`pretrain_extras` as without ``state``. Weights of
    other sizes fill only their size-free entries (flags, keys) and leave tables empty: the strict
    load the caller runs next refuses them (:func:`kgzoo.hub.load_state`, naming the tensors).
    """
    datamodule.adapt_to(model)
    graphs = datamodule.graphs()
    if graphs.fingerprint == getattr(model, "attached_fingerprint", None):
        return
    if state is not None:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)},
                              strict=False)
        try:
            model.attach(graphs, {})
            return
        except RuntimeError:  # a pre-computation the weights do not carry: computed below
            pass
    model.attach(graphs, pretrain_extras(model, datamodule))

"""A hyper-parameter value of the wrong type is refused where it is given, naming the key, the
value and the type (:func:`kgzoo.api.check_hparams`): ``kgzoo bench --variants lr=abc``
failed its cell inside torch's Adam with "'<=' not supported between instances of 'float' and
'str'", and ``embedding_dim=12.5`` inside ``torch.empty`` ("type must be tuple of ints")."""
from __future__ import annotations

import pytest

import kgzoo
from kgzoo.api import check_hparams
from kgzoo.registry import MODELS

SIZES = {"n_users": 5, "n_items": 30}


@pytest.mark.parametrize("key, value, message", [
    ("lr", "abc", "hyper-parameter 'lr' takes float, got 'abc' \\(str\\)"),
    ("embedding_dim", 12.5, "hyper-parameter 'embedding_dim' takes int, got 12.5 \\(float\\)"),
    ("embedding_dim", True, "hyper-parameter 'embedding_dim' takes int, got True \\(bool\\)"),
    ("reg_weight", None, "hyper-parameter 'reg_weight' takes float, got None"),
])
def test_create_model_refuses_a_value_of_another_type(key, value, message):
    with pytest.raises(ValueError, match=f"^model 'bpr': {message}"):
        kgzoo.create_model("bpr", sizes=SIZES, config=False, **{key: value})


def test_values_the_annotations_admit_pass():
    bpr = MODELS.get("bpr")
    # an int where a float is wanted, None where the annotation allows it, a str, a bool
    check_hparams("bpr", bpr, {"lr": 1, "reg_weight": 0.5, "embedding_dim": 8, "main_metric": None})
    check_hparams("kgplm", MODELS.get("kgplm"), {"fusion": "mean", "use_kg": False, "fusion_hidden": None})
    # annotations other than the simple ones are left to the model; a key it does not take is refused, naming it
    check_hparams("bpr", bpr, {"ks": "10"})
    with pytest.raises(ValueError, match="^variant 'nonsense=x': model 'bpr' takes no hyper-parameter 'nonsense'; known: "):
        check_hparams("bpr", bpr, {"nonsense": "x", "ks": "10"}, where="variant 'nonsense=x': ")
    m = kgzoo.create_model("bpr", sizes=SIZES, config=False, lr=1, embedding_dim=4)
    assert m.lr == 1 and m.user_emb.weight.shape == (5, 4)
    with pytest.raises(ValueError, match="^variant 'use_kg=1': model 'kgplm': hyper-parameter 'use_kg' takes bool"):
        check_hparams("kgplm", MODELS.get("kgplm"), {"use_kg": 1}, where="variant 'use_kg=1': ")


def test_a_number_yaml_read_as_text_says_how_to_write_it():
    """PyYAML reads ``lr: 1e-3`` (no dot) as the text '1e-3': the error says to write 0.001."""
    with pytest.raises(ValueError, match=r"got '1e-3' \(str\); YAML reads 1e-3 without a dot as text: write it 0.001"):
        kgzoo.create_model("bpr", sizes=SIZES, config=False, lr="1e-3")


TYPO = """model: {embedding_dim: 8, reg_weigth: 1.0e-4, lr: 1.0e-3}
train: {max_epochs: 3, patience: 2}
"""


def test_a_typo_in_a_config_of_ones_own_names_its_file_before_anything_trains(tmp_path, monkeypatch):
    """A user's config whose ``model`` section holds a key the model does not take: ``kgzoo bench``
    failed the cell ("model 'm' takes no hyper-parameter 'reg_weigth'", no file named) after the
    data loaded; now the grid refuses it before any cell, naming the file, the section and the
    nearest name (:func:`kgzoo.api.check_config`), and so does :func:`kgzoo.create_model`."""
    from kgzoo.bench.cells import resolve_grid

    (tmp_path / "bpr").mkdir()
    path = tmp_path / "bpr" / "ml-100k-kg.yaml"
    path.write_text(TYPO)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path))
    msg = (f"^{path}: model: model 'bpr' takes no hyper-parameter 'reg_weigth'; known: .*"
           r"\(did you mean 'reg_weight'\?\)$")
    with pytest.raises(ValueError, match=msg) as err:
        resolve_grid(["bpr"], ["ml-100k-kg"])
    assert "lr" in str(err.value) and not any(k in str(err.value) for k in ("n_users", "n_items", "task"))
    (tmp_path / "bpr" / "default.yaml").write_text(TYPO)  # create_model without data reads default.yaml
    with pytest.raises(ValueError, match=msg.replace("ml-100k-kg", "default")):
        kgzoo.create_model("bpr", sizes=SIZES)
    path.write_text("model: {embedding_dim: 8}\ntune:\n  reg_weigth: {low: 1.0e-6, high: 1.0e-2, log: true}\n")
    with pytest.raises(ValueError, match=f"^{path}: tune: model 'bpr' takes no hyper-parameter 'reg_weigth'"):
        resolve_grid(["bpr"], ["ml-100k-kg"])


def test_a_size_the_data_gives_is_refused_in_a_config_and_never_suggested(tmp_path, monkeypatch):
    """A config's ``model`` section with ``n_items: 30`` passed the check (``n_items`` is a
    constructor argument) and then replaced the data's size (``create_model`` puts the config's
    values over the DataModule's sizes): a model with the wrong number of items. The sizes come
    from the data: a config naming one is refused naming the file, and a typo near one
    (``n_item``) is not told to write it."""
    from kgzoo.bench.cells import resolve_grid

    (tmp_path / "bpr").mkdir()
    path = tmp_path / "bpr" / "ml-100k-kg.yaml"
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path))
    path.write_text("model: {embedding_dim: 8, n_items: 30}\n")
    with pytest.raises(ValueError, match=f"^{path}: model: model 'bpr' takes 'n_items' from the data, "
                                         "never from a config: remove it"):
        resolve_grid(["bpr"], ["ml-100k-kg"])
    path.write_text("model: {embedding_dim: 8, n_item: 30}\n")
    with pytest.raises(ValueError, match="takes no hyper-parameter 'n_item'") as err:
        resolve_grid(["bpr"], ["ml-100k-kg"])
    assert "n_items" not in str(err.value)

"""User code in the grid: ``kgzoo.registry.load_plugins`` (files, modules, the ``kgzoo.plugins``
entry points), ``--import`` on the command line, and subclasses taking ``**kwargs``."""
from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest

import kgzoo
from kgzoo import registry
from kgzoo.api import model_hparams
from kgzoo.cli import main
from kgzoo.models.layers.fusion import FUSIONS
from kgzoo.registry import MODELS, load_plugins

SUBCLASS = '''
from kgzoo.models.mf import BPRMF
from kgzoo.registry import register_model

LOADS = []  # one entry per execution of this file


@register_model("{name}", family="mf", paper="a user's subclass")
class ScaledBPR(BPRMF):
    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

LOADS.append(1)
'''


@pytest.fixture
def clean_registries():
    """Registries, loaded plugins and sys.modules as before the test (plugins register globally)."""
    saved = [(r, dict(r._entries)) for r in (MODELS, FUSIONS, registry.DATASETS)]
    loaded, modules = dict(registry._LOADED_PLUGINS), set(sys.modules)
    yield
    for r, entries in saved:
        r._entries.clear()
        r._entries.update(entries)
    registry._LOADED_PLUGINS.clear()
    registry._LOADED_PLUGINS.update(loaded)
    for m in set(sys.modules) - modules:
        del sys.modules[m]


def test_a_file_is_imported_once_and_its_subclass_takes_kwargs(tmp_path, clean_registries):
    path = tmp_path / "scaled_bpr.py"
    path.write_text(SUBCLASS.format(name="scaled_bpr"))
    first, = load_plugins([str(path)], entry_points=False)
    again, = load_plugins([str(path)], entry_points=False)
    assert first is again and first.LOADS == [1] and first.__name__ == "scaled_bpr"
    cls = MODELS.get("scaled_bpr")
    assert cls is first.ScaledBPR and "scaled_bpr" in kgzoo.list_models()
    # **kwargs: the parent's named arguments (BPRMF's, then Recommender's) are accepted keys
    known = model_hparams(cls)
    assert {"scale", "embedding_dim", "reg_weight", "lr", "n_users"} <= set(known)
    m = kgzoo.create_model("scaled_bpr", sizes={"n_users": 5, "n_items": 30}, config=False, scale=2.0,
                           embedding_dim=4)
    assert m.scale == 2.0 and m.user_emb.weight.shape == (5, 4)
    with pytest.raises(ValueError, match="takes no hyper-parameter 'nonsense'"):
        kgzoo.create_model("scaled_bpr", sizes={"n_users": 5, "n_items": 30}, config=False, nonsense=1)


def test_a_dotted_module_and_an_entry_point(tmp_path, monkeypatch, clean_registries):
    pkg = tmp_path / "my_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(SUBCLASS.format(name="bpr_from_module"))
    (pkg / "more.py").write_text(SUBCLASS.format(name="bpr_from_entry_point"))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="more", value="my_plugins.more", group=registry.PLUGIN_GROUP)
    asked = []
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: asked.append(group) or ([ep] if group == registry.PLUGIN_GROUP else []))
    mods = load_plugins(["my_plugins.models"])
    assert [m.__name__ for m in mods] == ["my_plugins.models", "my_plugins.more"] and asked == ["kgzoo.plugins"]
    assert {"bpr_from_module", "bpr_from_entry_point"} <= set(MODELS.list())
    assert load_plugins() == [sys.modules["my_plugins.more"]] and sys.modules["my_plugins.more"].LOADS == [1]


def test_import_errors_name_what_was_given(tmp_path, capsys, clean_registries):
    with pytest.raises(FileNotFoundError, match="--import nowhere/mine.py: no such file"):
        load_plugins(["nowhere/mine.py"], entry_points=False)
    with pytest.raises(ImportError, match="--import no_such_kgzoo_plugin: no module named 'no_such_kgzoo_plugin'"):
        load_plugins(["no_such_kgzoo_plugin"], entry_points=False)
    bad = tmp_path / "my-plugin.py"
    bad.write_text("")
    with pytest.raises(ValueError, match="'my-plugin' is not a valid module name"):
        load_plugins([str(bad)], entry_points=False)
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import no_such_dependency_of_a_plugin\n")
    with pytest.raises(ModuleNotFoundError):  # the plugin's own error, unchanged
        load_plugins([str(broken)], entry_points=False)
    assert "broken_plugin" not in sys.modules
    assert main(["pretrained", "--import", "no_such_kgzoo_plugin"]) == 2
    assert "no module named 'no_such_kgzoo_plugin'" in capsys.readouterr().err


def test_import_on_the_command_line(tmp_path, capsys, clean_registries):
    path = tmp_path / "cli_fusion.py"
    path.write_text(textwrap.dedent('''
        from kgzoo.models.layers.fusion import MeanFusion, register_fusion

        @register_fusion("cli_mean")
        class CliMean(MeanFusion):
            pass
    '''))
    sub = tmp_path / "cli_bpr.py"
    sub.write_text(SUBCLASS.format(name="cli_bpr"))
    assert main(["pretrained", "--import", str(path), "--import", str(sub), "nothing-matches-*"]) == 0
    assert "cli_mean" in FUSIONS and "cli_bpr" in MODELS
    # a registered subclass without a config of its own uses its parent's, and the run says so once
    assert capsys.readouterr().err.count("cli_bpr has no zoo config; using bpr's") == 1


def test_a_name_the_catalogue_holds_is_refused_naming_both_classes(tmp_path, clean_registries):
    """A user's model registered as ``bpr`` said only "model 'bpr' is already registered": which
    class holds it, and which one collided, is now in the message, with the names taken."""
    path = tmp_path / "my_collision.py"
    path.write_text(SUBCLASS.format(name="bpr"))
    with pytest.raises(ValueError, match=r"^model 'bpr' is already registered to kgzoo\.models\.mf\.BPRMF; register "
                                         r"my_collision\.ScaledBPR under another name \(taken: .*\bkgat\b"):
        load_plugins([str(path)], entry_points=False)
    assert MODELS.get("bpr").__module__ == "kgzoo.models.mf"


OWN_MODEL = '''
from kgzoo.models.base import Recommender
from kgzoo.registry import register_model


@register_model("{name}", family="mine", paper="a user's model")
class Own(Recommender):
    pass
'''


def test_a_users_model_without_any_config_is_said_once(tmp_path, capsys, monkeypatch, clean_registries):
    """A user's model (no catalogue parent) whose ``--config-dir`` was left off after ``kgzoo tune``
    ran with its constructor's defaults, untuned, up to 100 epochs, without a word; now the command
    says so once. With a config folder holding only its dataset file nothing is said."""
    monkeypatch.delenv("KGZOO_CONFIG_DIR", raising=False)  # --config-dir below extends it: restored after
    path = tmp_path / "own_model.py"
    path.write_text(OWN_MODEL.format(name="own_model"))
    assert main(["pretrained", "--import", str(path), "nothing-matches-*"]) == 0
    err = capsys.readouterr().err
    assert err.count("own_model has no zoo config (no own_model/ in any config folder): it runs with its "
                     "constructor's defaults, untuned, up to 100 epochs; give --config-dir DIR") == 1
    other = tmp_path / "other_model.py"
    other.write_text(OWN_MODEL.format(name="other_model"))
    (tmp_path / "cfg" / "other_model").mkdir(parents=True)
    (tmp_path / "cfg" / "other_model" / "ml-100k-kg.yaml").write_text("model: {lr: 0.01}\n")
    assert main(["pretrained", "--import", str(other), "--config-dir", str(tmp_path / "cfg"), "nothing-matches-*"]) == 0
    assert "no zoo config" not in capsys.readouterr().err


def test_a_ddp_rank_other_than_zero_says_nothing_of_configs(tmp_path, capsys, monkeypatch, clean_registries):
    """Lightning's DDP launcher starts each further rank as this very command again (``LOCAL_RANK``
    set): each said "X has no zoo config ..." once more, a notice meant to be said once."""
    monkeypatch.delenv("KGZOO_CONFIG_DIR", raising=False)
    path = tmp_path / "rank_model.py"
    path.write_text(OWN_MODEL.format(name="rank_model"))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert main(["pretrained", "--import", str(path), "nothing-matches-*"]) == 0
    assert "no zoo config" not in capsys.readouterr().err


def test_a_user_model_missing_its_math_is_told_what_to_write(clean_registries):
    """A user's Recommender without its own ``loss`` failed its cell with a bare
    ``NotImplementedError`` from the base class, and one without ``score``/``final_embeddings``
    with "X does not support top-K scoring": ``create_model``, the bench grid and ``kgzoo tune``
    now refuse it before any data is read, naming the class and the methods with their shapes.
    Every built-in model passes."""
    from kgzoo.api import check_model_class
    from kgzoo.bench.cells import resolve_grid
    from kgzoo.models.base import Recommender
    from kgzoo.registry import MODELS, register_model

    @register_model("no_math", family="mine", paper="a user's model")
    class NoMath(Recommender):
        pass

    @register_model("no_scoring", family="mine", paper="a user's model")
    class NoScoring(Recommender):
        def loss(self, batch):
            return self.parameters().__next__().sum()

    for name in MODELS.list():
        if name not in ("no_math", "no_scoring"):
            check_model_class(name, MODELS.get(name))
    no_loss = r"^model 'no_math' \(.*NoMath\) defines no loss\(batch\): .*LongTensors \[B\]"
    with pytest.raises(ValueError, match=no_loss):
        kgzoo.create_model("no_math", sizes={"n_users": 3, "n_items": 5})
    with pytest.raises(ValueError, match=no_loss):
        resolve_grid(["no_math"], ["ml-100k-kg"])
    with pytest.raises(ValueError, match=r"^model 'no_scoring' \(.*NoScoring\) cannot score: it defines neither "
                                         r"final_embeddings\(\) \(users FloatTensor \[U, d\].*score\(users\)"):
        kgzoo.create_model("no_scoring", sizes={"n_users": 3, "n_items": 5})


def test_a_registrys_builtins_are_imported_at_its_first_lookup_and_clash_with_a_users_name(tmp_path, monkeypatch):
    """``Registry.builtins_from``: the module registering the built-ins is imported at the first
    lookup, listing or registration, once; a failed import is tried again; a user's entry under
    a built-in's name is refused even when registered before anything was looked up."""
    pkg = tmp_path / "fake_builtins.py"
    pkg.write_text("from kgzoo.registry import Registry\nimport sys\nREG = sys.modules['fake_registry_holder'].REG\n"
                   "REG.register('alpha', int, family='x')\nIMPORTS = sys.modules['fake_registry_holder'].IMPORTS\n"
                   "IMPORTS.append(1)\n")
    holder = type(sys)("fake_registry_holder")
    holder.REG, holder.IMPORTS = registry.Registry("thing"), []
    monkeypatch.setitem(sys.modules, "fake_registry_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = holder.REG
    reg.builtins_from("fake_builtins_missing")
    with pytest.raises(ModuleNotFoundError):
        reg.list()
    reg.builtins_from("fake_builtins")
    assert holder.IMPORTS == [] and reg._entries == {}  # nothing imported before a lookup
    with pytest.raises(ValueError, match="'alpha' is already registered to builtins.int"):
        reg.register("alpha", float)  # the built-ins come first, so the user's clash is caught here
    assert reg.list() == ["alpha"] and "alpha" in reg and len(reg) == 1 and holder.IMPORTS == [1]
    monkeypatch.delitem(sys.modules, "fake_builtins", raising=False)

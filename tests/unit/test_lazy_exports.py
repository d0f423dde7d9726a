"""kgzoo.lazy and Registry.builtins_from: lazy public names, submodules and the built-ins' import."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import types

import pytest

from kgzoo.registry import Registry


@pytest.mark.parametrize("expr", ["kgzoo.models.base.Recommender", "kgzoo.hub.evaluate", "kgzoo.data.load_data",
                                  "kgzoo.metrics.TopKMetrics", "kgzoo.bench.run_grid", "kgzoo.hub.checkpoint.load_checkpoint",
                                  "kgzoo.api.create_model", "kgzoo.tasks.get_task", "kgzoo.protocols"])
def test_submodules_reachable_after_import_kgzoo_alone(expr: str) -> None:
    # before the lazy exports, `import kgzoo` bound its submodules (README: kgzoo.hub.evaluate)
    code = f"import kgzoo, kgzoo.hub, kgzoo.bench; print({expr})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]


def test_unknown_name_still_attribute_error() -> None:
    import kgzoo
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        kgzoo.no_such_thing  # noqa: B018
    assert not hasattr(kgzoo, "__wrapped__")
    assert not hasattr(kgzoo, "x.y") and not hasattr(kgzoo, "")  # (not a ModuleNotFoundError)


def test_concurrent_first_lookups_wait_for_the_builtins(tmp_path, monkeypatch) -> None:
    # a first lookup in one thread imports the built-ins; a lookup in another thread meanwhile
    # must not read the half-filled registry ("unknown model 'kgat' (known: )")
    reg: Registry[int] = Registry("thing", builtins="kgzoo_test_slow_builtins")
    monkeypatch.setitem(sys.modules, "kgzoo_test_reg_holder", types.SimpleNamespace(REG=reg))
    (tmp_path / "kgzoo_test_slow_builtins.py").write_text(textwrap.dedent("""
        import time
        import kgzoo_test_reg_holder as h
        h.REG.register("a", 1)
        time.sleep(0.3)
        h.REG.register("b", 2)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kgzoo_test_slow_builtins", raising=False)
    barrier, errors, got = threading.Barrier(4), [], []

    def look() -> None:
        barrier.wait()
        try:
            got.append(reg.get("b"))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=look) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and got == [2, 2, 2, 2]
    assert reg.list() == ["a", "b"]

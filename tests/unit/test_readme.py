"""The README's commands are the ones CI runs, and its Python examples run."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    install = ci[ci.index("# INSTALL") + 1].strip()
    test = ci[ci.index("# TEST") + 1].strip()
    bash = _blocks("bash")
    assert len(bash) == 2, "the README gives exactly two commands"
    assert install in bash[0] and "torch==2.13.0" in install and "kgzoo bench" in bash[0]
    assert bash[1].strip() == test


def test_readme_python_examples_run(tmp_path):
    """Each example in a fresh interpreter, as a reader would paste it."""
    blocks = _blocks("python")
    assert len(blocks) >= 3
    for i, code in enumerate(blocks):
        script = tmp_path / f"readme_{i}.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"README example {i} failed:\n{code}\n{proc.stderr[-3000:]}"

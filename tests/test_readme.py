"""The README's commands are the ones CI runs, and its Python examples run."""
from __future__ import annotations

import re

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


def test_readme_python_examples_run():
    blocks = _blocks("python")
    assert len(blocks) >= 3
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})

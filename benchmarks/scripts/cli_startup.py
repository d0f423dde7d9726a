"""CPU seconds of short ``kgzoo`` commands (``--help``, ``pretrained``, ``data list``): this
checkout against a git revision, interleaved, each a fresh interpreter.

The revision's ``kgzoo/`` is extracted (``git archive``) into a temporary folder, and each command
runs as ``python -m kgzoo.cli ...`` with that folder, or this checkout, first on ``sys.path``
(the working directory of ``-m``). The figure is the child's user + system CPU seconds
(:func:`resource.getrusage` of ``RUSAGE_CHILDREN``), not wall time, so that background work on
the machine does not enter it; the median of ``--repeats`` runs per command and side::

    KGZOO_DATA_DIR=../shared/data python benchmarks/scripts/cli_startup.py --base 1bddf94 --repeats 3

Raises:
    subprocess.CalledProcessError: ``git archive`` of an unknown revision, or a command that fails.
"""
from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (["--help"], ["pretrained"], ["data", "list"])


def cpu_seconds(cwd: Path, argv: list[str]) -> float:
    """User + system CPU seconds of ``python -m kgzoo.cli ARGV`` run in ``cwd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "kgzoo.cli", *argv], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="git revision to compare against (default main)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        blob = subprocess.run(["git", "archive", args.base, "kgzoo"], cwd=ROOT, check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(blob)).extractall(tmp, filter="data")
        sides = {f"base ({args.base})": Path(tmp), "this checkout": ROOT}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for argv in COMMANDS:
                for side, cwd in sides.items():  # interleaved: base, new, base, new...
                    times.setdefault((" ".join(argv), side), []).append(cpu_seconds(cwd, argv))
    print("| command | " + " | ".join(f"{s} CPU s" for s in sides) + " | ratio |")
    print("|---|" + "---|" * (len(sides) + 1))
    for argv in COMMANDS:
        c = " ".join(argv)
        med = [statistics.median(times[(c, s)]) for s in sides]
        print(f"| `kgzoo {c}` | " + " | ".join(f"{m:.2f}" for m in med) + f" | {med[0] / max(med[1], 1e-9):.0f}x |")


if __name__ == "__main__":
    main()

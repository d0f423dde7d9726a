#!/usr/bin/env bash
# Creates RecBole 1.2.1's own virtual environment, OUTSIDE kgzoo's venv.
#   bash benchmarks/scripts/recbole/setup_env.sh [VENV_DIR]      (default /tmp/recbole-venv)
#   WITH_SCATTER=1 bash benchmarks/scripts/recbole/setup_env.sh  also builds torch_scatter 2.1.2 (KGIN; ~15 min on 2 cores)
# RecBole 1.2.1 needs numpy<2, scipy==1.11.4, setuptools<70; torch is pinned to the CPU
# wheel 2.13.0 (never unpinned: that pulls a multi-GB CUDA build). dgl 1.0.4 (--no-deps) is
# the newest Python 3.11 wheel without graphbolt; RecBole's KGAT needs it.
set -euo pipefail
VENV=${1:-/tmp/recbole-venv}
case "$(realpath -m "$VENV")" in
  /work/main/.venv*) echo "refusing to touch kgzoo's venv" >&2; exit 2;;
esac
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
P="$VENV/bin/pip"
"$P" install -q wheel
"$P" install -q "torch==2.13.0" "numpy<2" "scipy==1.11.4"
"$P" install -q "recbole==1.2.1" "numpy<2" "scipy==1.11.4" "torch==2.13.0" "pandas<2.2"  # pandas 3 breaks RecBole's inplace fillna
# torch 2.13 declares setuptools>=77, RecBole's dependencies (tensorboard) import pkg_resources,
# gone from recent setuptools: force setuptools<70 afterwards (pip reports the metadata conflict; harmless
# at run time, torch does not import setuptools)
"$P" install -q --no-deps "setuptools<70"
"$P" install -q --no-deps "dgl==1.0.4" || echo "WARNING: dgl 1.0.4 not installed: RecBole KGAT will be skipped" >&2
"$P" install -q psutil pydantic 2>/dev/null || true   # dgl 1.0.4 imports psutil
if [ "${WITH_SCATTER:-0}" = 1 ]; then
  "$P" install --no-build-isolation "torch_scatter==2.1.2"
fi
"$VENV/bin/python" - <<'PY'
import recbole, torch, numpy, scipy
print("recbole", recbole.__version__, "torch", torch.__version__, "numpy", numpy.__version__, "scipy", scipy.__version__)
PY

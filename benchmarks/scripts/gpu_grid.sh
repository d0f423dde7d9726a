#!/usr/bin/env bash
# The ml-1m-kg and alibaba-ifashion-kg converged grids (issue 16, part 6) on one CUDA GPU, in a
# wall-clock budget (default 690 s, to fit a 12-minute device lease with its start-up).
#
#   KGZOO_DATA_DIR=/path/to/data bash benchmarks/scripts/gpu_grid.sh [OUT_DIR] [BUDGET_S]
#
# Each dataset takes the values tuned on its domain's small set (`kgzoo tune --from`, the
# catalogue's DatasetSpec.tune_from: video from ml-100k-kg, e-commerce from amazon-hin), written
# to a scratch config folder, never to the packaged configs. Rows (accelerator=cuda, devices=1)
# go to OUT_DIR/gpu.jsonl, resumable (--resume): a second call continues where the budget cut the
# first. Fast models first, so a cut budget loses the slowest cells. Copy the rows into benchmarks/results/ to publish them.
set -euo pipefail
OUT=${1:-${OUT:-benchmarks/results/gpu}}
BUDGET=${2:-690}
SEEDS=${SEEDS:-"0 1 2"}
MODELS=${MODELS:-"pop bpr lightgcn cfkg cke gcn kgcn kgplm kgin kgat ripplenet gat"}
CFG=$(mktemp -d)
START=$(date +%s)
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no CUDA GPU here" >&2; exit 2; }
for ds in ml-1m-kg alibaba-ifashion-kg; do
  small=$(python -c "from kgzoo.config import dataset_tune_from; print(dataset_tune_from('$ds'))")
  for m in $MODELS; do
    left=$(( BUDGET - ($(date +%s) - START) ))
    if (( left < 20 )); then echo "budget spent; rerun to resume" >&2; exit 0; fi
    if [[ $m != pop ]]; then
      kgzoo tune "$m" "$ds" --from "$small" --write-config "$CFG" \
        || { echo "$m: nothing tuned on $small yet; skipped" >&2; continue; }
    fi
    echo "[$(date +%H:%M:%S)] $m on $ds (${left} s left)"
    timeout "$left" kgzoo bench --config-dir "$CFG" --accelerator gpu --full --models "$m" --datasets "$ds" \
      --seeds $SEEDS --results "$OUT" --name gpu --resume --no-png || echo "$m on $ds: stopped (rc $?)" >&2
  done
done
echo "done in $(( $(date +%s) - START )) s; rows in $OUT/gpu.jsonl"

#!/usr/bin/env bash
# The GPU check, prepared to run in one go on a machine with one CUDA GPU and darts-hub installed:
#   bash benchmarks/gpu_check.sh [RESULTS.jsonl]
# 1. every benchmark workload on the GPU in float32 (the same mathematics as the CPU rows), then with bfloat16
#    autocast, then the PC-DARTS search step (K = 4), one JSON line each;
# 2. a first-order search at the paper's size (16 channels, 8 cells, batch 64) on 2,048 random CIFAR-sized images
#    for 100 steps, end to end through scripts/search.py (data pipeline, architecture and weight steps, evaluation),
#    its run record appended as one JSON line: a 50-epoch CIFAR-10 search is 19,550 such steps, so under 90 ms a
#    step means under 30 minutes;
# 3. the DARTS_V2 training step and inference compiled (bfloat16, inductor, one cell class at a time).
# Parts 1 and 2 are meant to finish in under 5 minutes on an H100/H200-class GPU; part 3 adds the compiling (not
# measured yet: no GPU has been lent). Nothing here needs the network.
set -euo pipefail
results=$(realpath -m "${1:-gpu_results.jsonl}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/# /' >>"$results"

python -m darts_hub.commands.benchmark --device cuda --steps 10 --warmup 3 >>"$results"
python -m darts_hub.commands.benchmark --device cuda --dtype bfloat16 --steps 10 --warmup 3 >>"$results"
python -m darts_hub.commands.benchmark --workload search_first_order --device cuda --partial_channels 4 \
    --steps 10 --warmup 3 >>"$results"

python - "$work/random_cifar.npz" <<'EOF'
import sys

import numpy as np

generator = np.random.default_rng(0)
np.savez(sys.argv[1], x=generator.integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8), y=np.arange(2048) % 10)
EOF
python -m darts_hub.commands.search --train_arrays "$work/random_cifar.npz" --output_dir "$work/search" \
    --epochs 50 --max_steps 100 --batch_size 64 --init_channels 16 --num_cells 8 >"$work/search.log" 2>&1 ||
    { tail -n 30 "$work/search.log"; exit 1; }
python - "$work/search/run_record.json" >>"$results" <<'EOF'
import json
import sys

record = json.load(open(sys.argv[1]))
steps = 100
print(json.dumps({
    "workload": "search_end_to_end_first_order",
    "batch_size": 64,
    "steps": steps,
    "seconds": record["train_runtime_seconds"],
    "seconds_per_step": round(record["train_runtime_seconds"] / steps, 4),
    "projected_50_epoch_cifar10_minutes": round(record["train_runtime_seconds"] / steps * 19550 / 60, 1),
}))
EOF
# 3. last, as compiling takes the longest: the CIFAR-10 training step and inference with bfloat16 and inductor,
#    cell by cell (--compile; the warm-up steps compile, the timed ones do not).
for workload in train_step inference; do
    python -m darts_hub.commands.benchmark --workload "$workload" --device cuda --dtype bfloat16 --compile \
        --steps 10 --warmup 3 >>"$results"
done
echo "Results in $results"

#!/usr/bin/env bash
# The one prepared GPU check (issue 32): under 10 minutes on one GPU, from the repository root.
#
#   bash benchmarks/gpu_check.sh [MINUTES]      # MINUTES: the quality row's training budget (3)
#
# 1. the CUDA tests (on a machine without CUDA they skip, and pytest says so);
# 2. config/gpu.yaml (the recipe at the published size) trained for 30 steps on the Bach10 store:
#    steps/s, peak GPU memory, bf16 on or off;
# 3. torchrun with 1 process for 5 steps (the distributed path end to end);
# 4. the quality table of a `gpu` row trained for MINUTES (benchmarks/transfer_quality.py).
#
# Without CUDA, steps 2 and 4 are skipped (gpu.yaml on 2 CPU cores would take hours), and step 3
# runs on the CPU with config/debug.yaml; every skip is printed. Needs ../shared/data (Bach10).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MINUTES=${1:-3}
WORK=data/bench/gpu_check
STORE=data/bench/transfer_quality_bach10/features
mkdir -p "$WORK"
skipped=()
has_cuda=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
stamp() { echo; echo "== $* ($(date +%T))"; }

stamp "device"
if [ "$has_cuda" = 1 ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
    echo "no CUDA device: the GPU parts are skipped below"
fi

stamp "1. CUDA tests"
$PY -m pytest -q -rs -k "cuda or gpu" tests || exit 1
[ "$has_cuda" = 1 ] || skipped+=("1: the CUDA tests ran but skipped their CUDA cases (see above)")

if [ ! -f "$STORE/store.json" ]; then  # the Bach10 store of transfer_quality.py, staged once
    stamp "staging the Bach10 store"
    $PY - <<'EOF'
import sys
sys.path.insert(0, "benchmarks")
from pathlib import Path
from quality_common import ROOT, stage_bach10
from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.data.prepare import PrepareOptions, prepare
work = ROOT / "data" / "bench" / "transfer_quality_bach10"
data, _ = stage_bach10(work, 20.0, 4)
prepare(data, work / "features", AudioTransform(), PrepareOptions(val_fraction=0.0))
EOF
fi

stamp "2. config/gpu.yaml: steps/s, peak memory, bf16"
if [ "$has_cuda" = 1 ]; then
    $PY - "$STORE" "$WORK/gpu_probe" <<'EOF'
import sys, time, torch
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer
store, run = sys.argv[1:]
trainer = Trainer(load_run_config("config/gpu.yaml", ["train.max_steps=40"]), store, run,
                  progress=False)
trainer.fit(10)  # warm-up: the loss terms' networks, cuDNN autotuning, the first allocations
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
trainer.fit()
torch.cuda.synchronize()
seconds = time.perf_counter() - t0
print(f"gpu.yaml on {torch.cuda.get_device_name()}: {30 / seconds:.2f} steps/s "
      f"(batch {trainer.config.train.batch_size}, crop {trainer.config.train.crop_frames}), "
      f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, bf16 {trainer.use_bf16}")
EOF
else
    skipped+=("2: gpu.yaml steps/s, peak memory and bf16 (no CUDA)")
    echo "skipped: no CUDA"
fi

stamp "3. torchrun, 1 process"
if [ "$has_cuda" = 1 ]; then
    config=(--config gpu)
else
    config=(--config debug)
    echo "(on the CPU, with config/debug.yaml)"
fi
rm -rf "$WORK/torchrun"
$PY -m torch.distributed.run --standalone --nproc-per-node 1 -m timbre_transfer train \
    --data "$STORE" --out "$WORK/torchrun" "${config[@]}" --max-steps 5 train.log_every=5
test -f "$WORK/torchrun/checkpoints/latest.pt" && echo "torchrun: checkpoint written"

stamp "4. quality after a fixed budget ($MINUTES min)"
if [ "$has_cuda" = 1 ]; then
    $PY benchmarks/transfer_quality.py --set bach10 --rows gpu --minutes "$MINUTES"
else
    skipped+=("4: the quality table of the gpu row (no CUDA)")
    echo "skipped: no CUDA"
fi

stamp "done"
if [ ${#skipped[@]} -gt 0 ]; then
    echo "skipped:"
    printf '  %s\n' "${skipped[@]}"
fi

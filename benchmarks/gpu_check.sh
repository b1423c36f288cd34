#!/usr/bin/env bash
# One prepared GPU check (run it on a CUDA machine from the repo root; about 5 minutes):
#   - the CUDA test subset (trainer on cuda, bf16 autocast, channels_last)
#   - throughput and peak memory of ce / kd / fcfd, eager and torch.compile
#   - the step-time ratio on the GPU
# Results land in benchmarks/results/ (and $OUT when set, for the device tool).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
$PY benchmarks/gpu_throughput.py --device cuda --batch 256 --steps 50
$PY benchmarks/gpu_throughput.py --device cuda --batch 256 --steps 50 --compile || echo "torch.compile run failed"
$PY benchmarks/step_time.py --device cuda --repeats 20
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*.json docs/benchmarks.md "$OUT"/ 2>/dev/null || true; fi

#!/usr/bin/env bash
# The one prepared GPU check (about 6 minutes on an H100, run from anywhere):
#   1. tests/training/test_cuda.py: an FCFD run on CUDA with bf16 autocast + channels_last, probes on CUDA
#   2. training throughput and peak memory of ce / kd / fcfd (eager)
#   3. probe speed on the GPU: batched exact vs the naive loop vs captum, Fisher
#   4. with a checkout of the authors' code (FCFD_OFFICIAL, default .official/FCFD when present,
#      a git-ignored folder the device tool can carry): their MetaModel step in their fp16 AMP
#      vs ours in bf16 + channels_last, batch 64 and 256 (benchmarks/versus_official.py)
#   5. detection: one training step of each of the paper's COCO pairs (Faster R-CNN + FPN,
#      random COCO-sized images, batch 8), KD and FCFD: images/s and peak memory
#      (benchmarks/det_throughput.py)
#   6. the same throughput under torch.compile (last: compiling can be slow; capped at 4 min)
# Results land in benchmarks/results/ and docs/benchmarks.md, and are copied to $OUT when set
# (the workplace's device tool). Needs torch; captum is optional (its rows are skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
mkdir -p benchmarks/results
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1
$PY -m pytest -q -p no:cacheprovider tests/training/test_cuda.py 2>&1 | tee benchmarks/results/gpu_tests.log \
  || status=1
$PY benchmarks/gpu_throughput.py --device cuda --batch 256 --steps 50 || status=1
$PY benchmarks/probe_speed.py --device cuda || status=1
if [ -z "${FCFD_OFFICIAL:-}" ] && [ -d .official/FCFD ]; then export FCFD_OFFICIAL=$PWD/.official/FCFD; fi
if [ -n "${FCFD_OFFICIAL:-}" ]; then
  $PY benchmarks/versus_official.py --device cuda --batches 64 256 || status=1
else
  echo "FCFD_OFFICIAL not set and no .official/FCFD: the side-by-side with the authors' step is skipped"
fi
$PY benchmarks/det_throughput.py --device cuda --batch 8 --steps 20 || status=1
timeout 240 $PY benchmarks/gpu_throughput.py --device cuda --batch 256 --steps 50 --compile \
  || echo "torch.compile throughput did not finish (status $?)"
if [ -n "${OUT:-}" ]; then
  cp benchmarks/results/gpu_*.json benchmarks/results/probe_speed_cuda.json \
    benchmarks/results/versus_official_cuda.json benchmarks/results/det_throughput_cuda.json \
    benchmarks/results/gpu_tests.log docs/benchmarks.md "$OUT"/ 2>/dev/null || true
fi
exit $status

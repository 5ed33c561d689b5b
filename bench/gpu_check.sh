#!/usr/bin/env bash
# One prepared GPU session: CUDA tests, then the loss, model and sampling benchmarks on CUDA.
# Run on the lent GPU machine from the repo root with the wheels of .whl carried (see README).
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
save() { cp bench/results/*_cuda* "$OUT"/ 2>/dev/null; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
timeout 80 python3 -m pytest -q -p no:cacheprovider -W ignore tests/test_cuda.py 2>&1 | tail -8
timeout 30 python3 bench/losses.py --device cuda --rounds 20 | tail -8; save
timeout 150 python3 bench/sampling.py --device cuda --full --rounds 8 | tail -14; save
timeout 120 python3 bench/sampling.py --device cuda --more --batches 1 --rounds 5 | tail -12; save
timeout 120 python3 bench/training.py --device cuda --models diffwave_base --regs amp --rounds 10 | tail -10; save
timeout 220 python3 bench/models.py --device cuda --models diffwave_base --modes fp32,bf16,bf16_compile,bf16_graphs --rounds 10 | tail -16; save
ls "$OUT"

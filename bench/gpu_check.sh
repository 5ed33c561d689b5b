#!/usr/bin/env bash
# One prepared GPU session: CUDA tests, then the loss and model benchmarks on CUDA.
# Run on the lent GPU machine from the repo root with the wheels of .whl carried (see README).
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
timeout 45 python3 bench/losses.py --device cuda --rounds 20 | tail -12
timeout 200 python3 bench/models.py --device cuda --models diffwave_base --modes fp32,bf16,bf16_compile,bf16_graphs --rounds 10
timeout 100 python3 bench/models.py --device cuda --models diffwave_small,unet --modes fp32,bf16,bf16_compile --rounds 8 --tag small_unet
cp bench/results/*_cuda* "$OUT"/ 2>/dev/null
ls "$OUT"

#!/usr/bin/env bash
# The prepared GPU check of issue 19: run it on the device machine from the repo root.
#
#   here, once:   bash bench/gpu_wheels.sh          (diffusers & co. as wheels into .whl/, git-ignored)
#   device tool:  run(command="bash bench/gpu_run.sh", carry=[".whl"], timeout_s=560)
#
# The GPU image has torch, transformers, safetensors, aiohttp, networkx and pytest but not
# diffusers: the carried wheels fill that in. Loom runs from the checkout (PYTHONPATH), not
# installed. The gpu tests come first (short), then the benchmark; both write into $OUT.
set -o pipefail
OUT=${OUT:-/tmp/loom-gpu-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:$PWD/nodes:$PWD/server${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_info.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu_info.txt"
timeout "${GPU_TESTS_S:-150}" python3 -m pytest -q -p no:cacheprovider -o addopts= -o asyncio_mode=strict tests/gpu 2>&1 | tee "$OUT/gpu_tests.log"
timeout "${GPU_BENCH_S:-360}" python3 bench/gpu.py --compile ${GPU_BENCH_ARGS:-} --json "$OUT/gpu.json" --markdown "$OUT/gpu.md" 2>&1 | tee "$OUT/gpu_bench.log"

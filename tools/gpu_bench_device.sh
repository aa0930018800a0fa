#!/usr/bin/env bash
# The GPU benchmark (benchmarks/gpu_bench.py) as one command on a lent device machine, which has torch,
# transformers and Triton but no torchao and no network. Prepare here, once, from the repo root:
#
#   echo /.whl/ >> "$(git rev-parse --git-dir)/info/exclude"
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl torchao==0.18.0      # torchao 0.18 needs torch >= 2.11
#
# then run it there with `.whl` carried and a limit under 10 minutes, e.g. the device tool's
#   run(command="bash tools/gpu_bench_device.sh", carry=[".whl"], timeout_s=590)
# The JSON and the full log come back in $OUT (gpu.json, gpu_bench.log); copy the figures into
# docs/benchmarks.md with the GPU's name and the date. Extra arguments go to gpu_bench.py.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/rr-site .whl/*.whl \
    || { echo "installing the carried wheels failed" >&2; exit 2; }
  export PYTHONPATH=/tmp/rr-site${PYTHONPATH:+:$PYTHONPATH}
fi
# the pack as the package `rationalrewards` without pip (the machine cannot fetch its other dependencies)
mkdir -p /tmp/rr-pkg && ln -sfn "$PWD" /tmp/rr-pkg/rationalrewards
export PYTHONPATH=/tmp/rr-pkg:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu_bench.log"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  2>&1 | tee -a "$OUT/gpu_bench.log"
python3 benchmarks/gpu_bench.py --json "$OUT/gpu.json" --keep-standin /tmp/rr-standin "$@" 2>&1 | tee -a "$OUT/gpu_bench.log"

#!/usr/bin/env bash
# The GPU benchmark in one command on a GPU machine: TF.js
# webgpu through Dawn vs PyTorch on the same card, f32 matMul 1024-8192
# (TF32 off) and the MLP / tiny-GPT training steps under each variant of
# distlab's webgpu settings (one process per variant). Prepare here first:
#   bash scripts/gpu/prepare.sh            # .device/: node binary, Vulkan loader debs (what a bare machine lacks)
#   node bench/gpu/build.mjs                # .gpu-run/: bundled bench + Dawn's dawn.node
# then on the GPU machine (carry [".device", ".gpu-run"]):
#   bash bench/gpu/run.sh            (ONLY=steps, ONLY=matmul or ONLY=gpt2 for a part of it)
# The GPT-2-small step (gpt2.sh) comes last. Results are printed and written
# to $OUT/gpu-bench.jsonl (and $OUT/gpt2-bench.jsonl) when OUT is set.
set -uo pipefail
source scripts/gpu/device-env.sh || exit 1
export NODE_PATH=$PWD/.gpu-run/node_modules PYTHONUNBUFFERED=1
log=${OUT:-/tmp}/gpu-bench.jsonl
only=${ONLY:-all}
stock="DISTLAB_WEBGPU_HOST=none DISTLAB_WEBGPU_MEAN_GRADIENT=stock DISTLAB_WEBGPU_FUSED_ADAM=0"
fast="enable-dawn-features=skip_validation,disable_robustness"
# name|environment; distlab's default has every lever but the Dawn options. The earlier default and the
# default alternate twice (medians of neighbouring processes swing by up to 1.7x).
early="DISTLAB_WEBGPU_FUSED_OPS=0"
variants=(
  "tfjs-stock|$stock DISTLAB_WEBGPU_MATMUL_TILE=stock $early"
  "no fused ops (earlier default)|$early"
  "default (fused ops)|PROFILE=1"
  "no fused ops (earlier default)|$early"
  "default (fused ops)|"
  "no fused ops + dawn skip_validation|$early DISTLAB_WEBGPU_DAWN=$fast"
  "default + dawn skip_validation|DISTLAB_WEBGPU_DAWN=$fast"
)
[ "$only" = gpt2 ] && exec bash bench/gpu/gpt2.sh
{
  echo "{\"date\": \"$(date -u +%FT%TZ)\", \"gpu\": \"$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)\"}"
  [ "$only" = matmul ] || python3 bench/compute_torch.py --device cuda --only matmul,mlp,gpt --steps 20
  [ "$only" = steps ] || (cd .gpu-run && MODE=matmul VARIANT=matmul node webgpu-bench.cjs)
  if [ "$only" != matmul ]; then
    for v in "${variants[@]}"; do
      (cd .gpu-run && env VARIANT="${v%%|*}" ${v#*|} timeout 300 node webgpu-bench.cjs)
    done
    python3 bench/compute_torch.py --device cuda --only matmul,mlp,gpt --steps 20
  fi
} 2>&1 | tee "$log"
if [ "$only" = all ]; then bash bench/gpu/gpt2.sh; fi

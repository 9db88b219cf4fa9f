#!/usr/bin/env bash
# GPT-2 small training steps on one GPU: distlab's model on TF.js webgpu
# (gpt2-bench.ts, both attention forms) between two runs of its PyTorch
# eager f32 twin (gpt2_torch.py, TF32 off), then ours again with Dawn's
# validation and robustness checks off, and the twin with PyTorch's fused
# attention for reference. Prepare here first (as run.sh says):
#   bash scripts/gpu/prepare.sh && node bench/gpu/build.mjs
# then on the GPU machine (carry [".device", ".gpu-run"]):
#   bash bench/gpu/gpt2.sh        (or ONLY=gpt2 bash bench/gpu/run.sh)
# BATCH (8) and STEPS (10) apply to both sides; VARIANTS (gpt2-bench.ts)
# times settings side by side, SWEEP=1 adds the attention sweep. Results are printed and
# written to $OUT/gpt2-bench.jsonl when OUT is set.
set -uo pipefail
source scripts/gpu/device-env.sh || exit 1
export NODE_PATH=$PWD/.gpu-run/node_modules PYTHONUNBUFFERED=1
batch=${BATCH:-8} steps=${STEPS:-10}
torch_twin() { timeout 200 python3 bench/gpu/gpt2_torch.py --batch "$batch" --steps "$steps" "$@"; }
{
  echo "{\"date\": \"$(date -u +%FT%TZ)\", \"gpu\": \"$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)\"}"
  torch_twin --attention explicit --memory-steps 100
  (cd .gpu-run && env BATCH="$batch" STEPS="$steps" PROFILE=1 SWEEP="${SWEEP:-}" VARIANTS="${VARIANTS:-default}" timeout 300 node gpt2-bench.cjs)
  torch_twin --attention explicit --memory-steps 0
  (cd .gpu-run && BATCH=$batch STEPS=$steps FORMS=matmul MEMORY_STEPS=0 VARIANTS=default SWEEP= DISTLAB_WEBGPU_DAWN="enable-dawn-features=skip_validation,disable_robustness" timeout 120 node gpt2-bench.cjs)
  torch_twin --attention sdpa --memory-steps 0
} 2>&1 | tee "${OUT:-/tmp}/gpt2-bench.jsonl"
node .gpu-run/gpt2-summary.cjs "${OUT:-/tmp}/gpt2-bench.jsonl" || exit 1
# gpt2-bench.ts marks each check with "passed"; one that failed fails the run.
if grep -q '"passed":false' "${OUT:-/tmp}/gpt2-bench.jsonl"; then echo "gpt2.sh: a check failed (\"passed\":false above)" >&2; exit 1; fi

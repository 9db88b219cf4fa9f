#!/usr/bin/env bash
# The GPU benchmark in one command on the device machine (issue 6): TF.js
# webgpu through Dawn vs PyTorch on the same card, f32 matMul 1024-8192
# (TF32 off) and the MLP / tiny-GPT training steps. Prepare here first:
#   bash /work/shared/tools/gpu-kit.sh      # .device/: node binary, Vulkan loader debs
#   node bench/gpu/build.mjs                # .gpu-run/: bundled bench + Dawn's dawn.node
# then on the device machine (run tool, carry [".device", ".gpu-run"]):
#   bash bench/gpu/run.sh
# Results are printed and written to $OUT/gpu-bench.jsonl when OUT is set.
set -uo pipefail
for f in .device/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
mkdir -p /tmp/n && xz -dc .device/node.xz > /tmp/n/node && chmod +x /tmp/n/node
export PATH=/tmp/n:$PATH VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export NODE_PATH=$PWD/.gpu-run/node_modules PYTHONUNBUFFERED=1
log=${OUT:-/tmp}/gpu-bench.jsonl
{
  echo "{\"date\": \"$(date -u +%FT%TZ)\", \"gpu\": \"$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)\"}"
  python3 bench/compute_torch.py --device cuda --only matmul,mlp,gpt --steps 20
  (cd .gpu-run && node webgpu-bench.cjs)
  python3 bench/compute_torch.py --device cuda --only matmul,mlp,gpt --steps 20
} 2>&1 | tee "$log"

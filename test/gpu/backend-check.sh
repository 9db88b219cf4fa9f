#!/usr/bin/env bash
# On a machine with 2+ GPUs: runs `--backend gpus` cells (allReduce across
# the GPU ranks, state kept between cells, a matMul on each rank's GPU) and
# checks that each rank reports a different GPU. Prepare here first:
#   bash /work/shared/tools/gpu-kit.sh                   # .device/: node binary, Vulkan loader debs
#   node bench/gpu/build.mjs                             # .gpu-run/: Dawn's dawn.node (the webgpu package)
#   node --import tsx test/gpu/build-backend-check.ts    # build/gpu-check/
# then on the device machine (run tool, carry [".device", ".gpu-run", "build/gpu-check"]):
#   bash test/gpu/backend-check.sh
set -euo pipefail
for f in .device/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
mkdir -p /tmp/n && xz -dc .device/node.xz > /tmp/n/node && chmod +x /tmp/n/node
export PATH=/tmp/n:$PATH VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export NODE_PATH=$PWD/.gpu-run/node_modules
node build/gpu-check/backend-check.js

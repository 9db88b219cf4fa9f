#!/usr/bin/env bash
# On a machine with 2+ GPUs: shows that `--backend gpus` gives each rank
# process exactly one GPU, and a different one per rank
# (test/gpu/isolation-check.ts). Prepare here first:
#   bash /work/shared/tools/gpu-kit.sh      # .device/: node binary, Vulkan loader debs
#   node bench/gpu/build.mjs                # .gpu-run/: Dawn's dawn.node (the webgpu package)
#   node --import tsx test/gpu/build-backend-check.ts   # build/gpu-check/
# then on the device machine (run tool, carry [".device", ".gpu-run", "build/gpu-check"]):
#   bash test/gpu/isolation-check.sh
# Exits 0 when every rank holds only its own GPU open.
set -euo pipefail
for f in .device/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
mkdir -p /tmp/n && xz -dc .device/node.xz > /tmp/n/node && chmod +x /tmp/n/node
export PATH=/tmp/n:$PATH VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export NODE_PATH=$PWD/.gpu-run/node_modules
node build/gpu-check/isolation-check.js

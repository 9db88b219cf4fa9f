#!/usr/bin/env bash
# On a machine with 2+ GPUs: shows that `--backend gpus` gives each rank
# process exactly one GPU, and a different one per rank
# (test/gpu/isolation-check.ts). Prepare here first:
#   bash scripts/gpu/prepare.sh            # .device/: node binary, Vulkan loader debs (what a bare machine lacks)
#   node bench/gpu/build.mjs                # .gpu-run/: Dawn's dawn.node (the webgpu package)
#   node --import tsx test/gpu/build-backend-check.ts   # build/gpu-check/
# then on the GPU machine (carry [".device", ".gpu-run", "build/gpu-check"]):
#   bash test/gpu/isolation-check.sh
# Exits 0 when every rank holds only its own GPU open.
set -euo pipefail
source scripts/gpu/device-env.sh || exit 1
export NODE_PATH=$PWD/.gpu-run/node_modules
node build/gpu-check/isolation-check.js

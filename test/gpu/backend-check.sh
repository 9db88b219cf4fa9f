#!/usr/bin/env bash
# On a machine with 2+ GPUs: runs `--backend gpus` cells (allReduce across
# the GPU ranks, state kept between cells, a matMul on each rank's GPU) and
# checks that each rank reports a different GPU. Prepare here first:
#   bash scripts/gpu/prepare.sh                          # .device/: node binary, Vulkan loader debs (what a bare machine lacks)
#   node bench/gpu/build.mjs                             # .gpu-run/: Dawn's dawn.node (the webgpu package)
#   node --import tsx test/gpu/build-backend-check.ts    # build/gpu-check/
# then on the GPU machine (carry [".device", ".gpu-run", "build/gpu-check"]):
#   bash test/gpu/backend-check.sh
set -euo pipefail
source scripts/gpu/device-env.sh || exit 1
export NODE_PATH=$PWD/.gpu-run/node_modules
node build/gpu-check/backend-check.js

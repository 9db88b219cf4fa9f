#!/usr/bin/env bash
# The real kernel on a GPU machine with no network and no Node.js: unpacks
# Node, the Vulkan loader, the packed kernel and the Python client, then runs
# test/gpu/kernel_e2e.py (jupyter_client -> kernel -> `--backend gpus` rank), or the
# script named as the first argument (test/gpu/notebooks_e2e.py: every tutorial on GPU ranks;
# bench/gpu/ddp_gpus.py: data parallel over the GPUs next to PyTorch DDP with NCCL).
# Prepare here first (on a machine with Node.js and apt):
#   bash scripts/gpu/prepare.sh   # .device/node.xz, .device/gl/*.deb
#   npm run build && node test/gpu/pack-kernel.mjs     # .device/kernel.tar.xz, .device/py.tar.xz, .device/whl/
# then on the GPU machine, from the repo root (with .device/ copied along):
#   bash test/gpu/kernel-e2e.sh [test/gpu/notebooks_e2e.py]
# Writes $OUT/kernel-e2e.json when OUT is set; exits 1 when a check failed.
set -euo pipefail
# The tree this script is in (the repo root, or a copy of it holding test/ and .device/).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
if ! command -v node >/dev/null; then
  if ! ldconfig -p | grep -q libvulkan.so.1; then for f in .device/gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  mkdir -p /tmp/n && xz -dc .device/node.xz > /tmp/n/node && chmod +x /tmp/n/node
  export PATH=/tmp/n:$PATH
fi
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json} PYTHONUNBUFFERED=1
# The packed tree: kernel/ and node_modules/ as in the repo, plus this repo's test scripts.
work=/tmp/distlab-e2e
rm -rf "$work" && mkdir -p "$work/test" /tmp/site
xz -dc .device/kernel.tar.xz | tar -C "$work" -x
cp -r "$repo/test/gpu" "$repo/test/kernel" "$work/test/"
cp -r "$repo/notebooks" "$work/"
mkdir -p "$work/bench" && cp -r "$repo/bench/gpu" "$work/bench/"
xz -dc .device/py.tar.xz | tar -C /tmp/site -x
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
echo "node $(node --version), $(python3 --version), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
cd "$work"
python3 "${1:-test/gpu/kernel_e2e.py}"

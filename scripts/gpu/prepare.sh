#!/usr/bin/env bash
# Packs what a bare Linux x64 GPU machine lacks for distlab's GPU scripts
# (bench/gpu/run.sh, test/gpu/*.sh) into .device/, on a Debian or Ubuntu
# machine that has Node.js and apt:
#   .device/node.xz   this machine's node binary, xz-compressed
#   .device/gl/*.deb  the Vulkan loader (libvulkan1) and the GL/EGL libraries
#                     NVIDIA's Vulkan driver loads with it, for amd64
# Take .device/ (git ignores it) to the GPU machine and start each command
# there with `source scripts/gpu/device-env.sh`, which installs from it only
# what that machine lacks. A machine set up as docs/gpus.md says needs neither.
# Usage: bash scripts/gpu/prepare.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
mkdir -p .device/gl

node_bin=$(readlink -f "$(command -v node)")
if [ ! -s .device/node.xz ]; then
  xz -T2 -6 -c "$node_bin" > .device/node.xz.part && mv .device/node.xz.part .device/node.xz
fi

if ! ls .device/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null; then
    echo "prepare: apt-get is missing: fetch libvulkan1 and the GL/EGL libraries (amd64 .deb files) into .device/gl by hand" >&2
    exit 1
  fi
  # A private package list for amd64, so the host's own apt state is left alone.
  lists=$(mktemp -d)
  apt_opts=(-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o "Dir::State::Lists=$lists")
  mkdir -p "$lists/partial" && chmod 755 "$lists"
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd .device/gl && apt-get "${apt_opts[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
  rm -rf "$lists"
fi

echo "prepare: .device/ holds $(du -sh .device | cut -f1): node $("$node_bin" --version), $(ls .device/gl | wc -l) packages in .device/gl"
echo "prepare: on the GPU machine, start each command with: source scripts/gpu/device-env.sh"

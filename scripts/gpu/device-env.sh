# Sourced at the start of a command on a GPU machine (bash):
#   source scripts/gpu/device-env.sh
# Makes node 20+, the Vulkan loader and NVIDIA's Vulkan driver manifest
# available, taking from .device/ (scripts/gpu/prepare.sh) only what the
# machine lacks, and exports PATH and VK_DRIVER_FILES. Unpacking the .deb
# files writes under / and needs root; a machine prepared by hand
# (docs/gpus.md) passes through untouched.
distlab_device_env() {
  local root major found
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 20 ]; then
    if [ ! -s "$root/.device/node.xz" ]; then
      echo "device-env: no node 20+ here and no .device/node.xz: install Node.js 20+ or run scripts/gpu/prepare.sh where Node is" >&2
      return 1
    fi
    mkdir -p /tmp/distlab-node && xz -dc "$root/.device/node.xz" > /tmp/distlab-node/node && chmod +x /tmp/distlab-node/node
    export PATH=/tmp/distlab-node:$PATH
  fi
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    if ! ls "$root"/.device/gl/*.deb >/dev/null 2>&1; then
      echo "device-env: the Vulkan loader (libvulkan.so.1) is missing and .device/gl has no packages: apt-get install libvulkan1, or run scripts/gpu/prepare.sh" >&2
      return 1
    fi
    local deb
    for deb in "$root"/.device/gl/*.deb; do dpkg -x "$deb" /; done
    ldconfig
  fi
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then
    # NVIDIA's container toolkit mounts the driver's manifest outside the standard folders.
    for found in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
      if [ -f "$found" ]; then export VK_DRIVER_FILES=$found; break; fi
    done
  fi
  echo "device-env: node $(node --version), $(ldconfig -p | grep -m1 -o 'libvulkan\.so\.1 ') VK_DRIVER_FILES=${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-(loader default)}}"
}
distlab_device_env

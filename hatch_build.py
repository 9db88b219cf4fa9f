"""Puts the staged `distlab` kernelspec into the wheel's shared data.

The kernelspec holds absolute paths (this node, this checkout's kernel/dist/cli.js),
so it cannot be a static file: scripts/setup/extension.mjs stages it with
`node kernel/dist/cli.js install --prefix <KERNELSPEC_STAGE>` before `pip install .`.
Without a staged kernelspec the wheel carries the extension alone.
"""
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

KERNELSPEC_STAGE = Path("build") / "kernelspec-prefix" / "share" / "jupyter" / "kernels" / "distlab"


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        staged = Path(self.root) / KERNELSPEC_STAGE
        if self.target_name == "wheel" and (staged / "kernel.json").is_file():
            build_data["shared_data"][str(staged)] = "share/jupyter/kernels/distlab"

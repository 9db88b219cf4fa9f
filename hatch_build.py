"""Puts the built labextension and the staged `distlab` kernelspec into the wheel's shared data.

Both are build outputs that git ignores, so they are listed file by file here
rather than selected by hatch. The kernelspec holds absolute paths (this node,
this checkout's kernel/dist/cli.js), so it cannot be a static file:
scripts/setup/extension.mjs stages it with
`node kernel/dist/cli.js install --prefix build/kernelspec-prefix` before
`pip install .`. Without a staged kernelspec the wheel carries the extension alone.
"""
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LABEXTENSION = (Path("extension") / "labextension", "share/jupyter/labextensions/@distlab/timeline")
KERNELSPEC = (Path("build") / "kernelspec-prefix" / "share" / "jupyter" / "kernels" / "distlab", "share/jupyter/kernels/distlab")


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        for source, target in (LABEXTENSION, KERNELSPEC):
            folder = Path(self.root) / source
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    build_data["shared_data"][str(path)] = f"{target}/{path.relative_to(folder).as_posix()}"

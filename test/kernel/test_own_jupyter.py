"""distlab installed into a user's own Jupyter, three ways, each into a fresh
virtual environment with JupyterLab from PyPI (not the repository's .venv):

- `pip install <checkout>`: the wheel brings the timeline extension and the kernelspec;
- `distlab install --sys-prefix` (what `npx distlab install` runs) from the checkout;
- the npm package from `npm pack`, installed into an empty folder, then its own `distlab install`.

Each path then runs a small notebook with nbclient inside that environment
and checks `jupyter kernelspec list` and `jupyter labextension list` there.
The environments come from uv (requirements-dev.txt), whose cache makes a
fresh JupyterLab environment take seconds after the first. HOME and the
Jupyter user folders point into the test's temporary folder, so nothing
registered for the real user can answer in place of what was installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_helpers import REPO_ROOT

pytestmark = pytest.mark.timeout(900)

UV = Path(sys.prefix) / "bin" / "uv"
# What a user's own JupyterLab environment holds: JupyterLab 4 and a notebook runner.
JUPYTER_PACKAGES = ["jupyterlab>=4,<5", "nbclient", "nbformat"]

NOTEBOOK_RUNNER = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.v4.new_notebook()
nb.metadata["kernelspec"] = {"name": "distlab", "display_name": "TypeScript (distlab)", "language": "typescript"}
nb.cells = [
    nbformat.v4.new_code_cell('const greeting: string = "hello from " + "distlab";\ngreeting'),
    nbformat.v4.new_code_cell("%%distributed -n 2\nconst summed = await dist.allReduce(new Float32Array([dist.rank + 1]));\nsummed[0]"),
]
NotebookClient(nb, kernel_name="distlab", timeout=240, startup_timeout=120).execute()
print(json.dumps([[output for output in cell.outputs] for cell in nb.cells]))
"""


def run(command: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"`{' '.join(command)}` exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture
def jupyter_env(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh venv with JupyterLab from PyPI (and pip, for the pip path), and an environment that isolates it."""
    if not UV.exists():
        pytest.fail(f"{UV} is missing: run `npm run setup` (requirements-dev.txt installs uv)")
    venv = tmp_path / "env"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(home),
        "VIRTUAL_ENV": str(venv),
        "LANG": "C.UTF-8",
        # uv keeps its cache in the real user's folder: the wheels are the same for every fresh environment.
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
        "npm_config_cache": os.environ.get("npm_config_cache", str(Path.home() / ".npm")),
        "npm_config_prefer_offline": "true",
    }
    env.update({key: value for key, value in os.environ.items() if key.startswith(("PIP_", "UV_", "SSL_CERT_", "DISTLAB_TEST_RUN"))})
    # uv trusts its own certificate bundle unless told otherwise; a machine behind a TLS proxy has the proxy's CA in the system's.
    env.setdefault("UV_NATIVE_TLS", "1")
    run([str(UV), "venv", "--seed", "--quiet", "--python", sys.executable, str(venv)], env)
    run([str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *JUPYTER_PACKAGES], env, timeout=600)
    yield venv, env


def check_registered_and_runs(venv: Path, env: dict[str, str], cli: Path) -> None:
    jupyter = str(venv / "bin" / "jupyter")
    specs = json.loads(run([jupyter, "kernelspec", "list", "--json"], env).stdout)["kernelspecs"]
    assert "distlab" in specs, specs.keys()
    spec = specs["distlab"]
    assert Path(spec["resource_dir"]).resolve().is_relative_to(venv.resolve()), spec["resource_dir"]
    # argv: node, its V8 start flags (relaxed SIMD where Node takes it), the CLI, then the kernel's arguments.
    argv = spec["spec"]["argv"]
    assert argv[-3:] == ["kernel", "--connection-file", "{connection_file}"], argv
    assert Path(argv[-4]).resolve() == cli.resolve(), argv

    listing = run([jupyter, "labextension", "list"], env)
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    line = next((row for row in text.splitlines() if "@distlab/timeline" in row), None)
    assert line is not None, text
    assert re.search(r"\benabled\b", line) and re.search(r"\bOK\b", line), line

    executed = json.loads(run([str(venv / "bin" / "python"), "-c", NOTEBOOK_RUNNER], env).stdout.strip().splitlines()[-1])
    plain, distributed = executed
    assert plain[-1]["data"]["text/plain"] == "'hello from distlab'", plain
    results = [output for output in distributed if output["output_type"] == "execute_result"]
    assert results and results[0]["data"]["application/json"] == [3, 3], distributed
    timeline = [output for output in distributed if "application/vnd.distlab.timeline+json" in output.get("data", {})]
    assert timeline and "<svg" in timeline[-1]["data"]["text/html"], distributed


def test_pip_install_of_the_checkout_brings_the_extension_and_the_kernelspec(jupyter_env: tuple[Path, dict[str, str]]) -> None:
    venv, env = jupyter_env
    # What README tells: `npm run setup` built the extension and staged the kernelspec; pip packs both.
    assert (REPO_ROOT / "build" / "kernelspec-prefix" / "share" / "jupyter" / "kernels" / "distlab" / "kernel.json").exists(), \
        "run `npm run setup` first: it stages the kernelspec the wheel carries"
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO_ROOT)], env, timeout=600)
    check_registered_and_runs(venv, env, REPO_ROOT / "kernel" / "dist" / "cli.js")


def test_distlab_install_sys_prefix_from_the_checkout(jupyter_env: tuple[Path, dict[str, str]]) -> None:
    venv, env = jupyter_env
    out = run(["npx", "--no-install", "distlab", "install", "--sys-prefix"], env, cwd=REPO_ROOT).stdout
    assert f"Installed the distlab kernelspec in {venv}/share/jupyter/kernels/distlab" in out, out
    assert "Installed the JupyterLab timeline extension" in out, out
    check_registered_and_runs(venv, env, REPO_ROOT / "kernel" / "dist" / "cli.js")


def test_the_npm_package_installs_into_an_empty_folder_and_its_distlab_install_works(jupyter_env: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    venv, env = jupyter_env
    packed = tmp_path / "pack"
    packed.mkdir()
    pack = run(["npm", "pack", "--workspace", "kernel", "--pack-destination", str(packed), "--json"], env, cwd=REPO_ROOT)
    tarball = packed / json.loads(pack.stdout[pack.stdout.index("["):])[0]["filename"]
    assert tarball.exists(), pack.stdout
    files = {entry["path"] for entry in json.loads(pack.stdout[pack.stdout.index("["):])[0]["files"]}
    assert "dist/cli.js" in files and "labextension/package.json" in files, sorted(files)[:20]

    user_folder = tmp_path / "somewhere"
    user_folder.mkdir()
    run(["npm", "install", "--no-audit", "--no-fund", str(tarball)], env, cwd=user_folder, timeout=900)
    cli = user_folder / "node_modules" / "distlab" / "dist" / "cli.js"
    out = run([str(user_folder / "node_modules" / ".bin" / "distlab"), "install", "--sys-prefix"], env, cwd=user_folder).stdout
    assert "Installed the JupyterLab timeline extension" in out, out
    check_registered_and_runs(venv, env, cli)

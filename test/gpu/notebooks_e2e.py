"""Every tutorial on GPU ranks through the real kernel (run by test/gpu/kernel-e2e.sh).

On a GPU machine: `bash test/gpu/kernel-e2e.sh test/gpu/notebooks_e2e.py`. Each
notebook under notebooks/ runs top to bottom in a fresh kernel started by
jupyter_client, with its parameters cell set to BACKEND="gpus" and
SIZE="small" (DISTLAB_NOTEBOOK_<NAME> overrides either, as for
test_notebooks.py). Its checks are its own cells, which throw when a result
is off; a cell tagged raises-exception must raise the error it promises.
With fewer GPUs than a cell's -n, ranks share the GPUs (docs/distributed.md).

No nbformat or nbclient here (the GPU machine gets only jupyter_client), so
notebooks are read as JSON and run cell by cell. Prints one line per notebook
(PASS/FAIL, seconds, the first unexpected error) and, when OUT is set, writes
$OUT/notebooks-e2e.json; exits 1 when a notebook failed.
Set E2E_NOTEBOOKS=01,04 to run only the notebooks whose names start so, and
E2E_VERBOSE=1 to print every cell's output.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "kernel"))
from kernel_helpers import ensure_kernelspec_installed, execute, start_kernel, stop_kernel  # noqa: E402
from notebook_cells import apply_parameters, expected_error_problem, parameter_overrides  # noqa: E402

NOTEBOOK_DIR = HERE.parent.parent / "notebooks"
CELL_TIMEOUT = 600  # seconds; the GPU's first cells also compile its shaders
# 09 runs its cells on threads, processes and agents by design: nothing of it runs on a GPU.
NOT_ON_GPUS = {"09-remote-hosts"}
# E2E_VERBOSE=1 prints every cell's output (its last 1200 characters) as the notebook runs
VERBOSE = os.environ.get("E2E_VERBOSE") == "1"


def source_of(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def run_notebook(path: Path, overrides: dict[str, str]) -> dict:
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        cell["source"] = source_of(cell)
    apply_parameters(notebook, overrides)
    started = time.monotonic()
    km, kc = start_kernel(cwd=path.parent)
    problem = None
    gpu_notes: list[str] = []
    try:
        for index, cell in enumerate(notebook["cells"]):
            if cell.get("cell_type") != "code" or not cell["source"].strip():
                continue
            outcome = execute(kc, cell["source"], timeout=CELL_TIMEOUT)
            if VERBOSE and outcome.stdout.strip():
                print(f"  [{path.stem} cell {index}] {outcome.stdout.strip()[-1200:]}", flush=True)
            gpu_notes += [line for line in outcome.stderr.splitlines() if "share" in line and "GPU" in line]
            error = outcome.error
            cell["outputs"] = [{"output_type": "error", "ename": error["ename"], "evalue": error["evalue"]}] if error else []
            promised = expected_error_problem(cell, index)
            if promised is not None:
                problem = promised
            elif error is not None and "raises-exception" not in cell.get("metadata", {}).get("tags", []):
                problem = f"cell {index}: {error['ename']}: {error['evalue'][:2000]}\n{outcome.stdout[-1500:]}{outcome.stderr[-1500:]}"
            if problem is not None:
                break
    finally:
        stop_kernel(km, kc)
    return {"notebook": path.stem, "ok": problem is None, "seconds": round(time.monotonic() - started, 1), "problem": problem, "gpuNotes": sorted(set(gpu_notes))}


def main() -> int:
    ensure_kernelspec_installed()
    overrides = {**parameter_overrides(), "BACKEND": os.environ.get("DISTLAB_NOTEBOOK_BACKEND", "gpus")}
    chosen = [prefix for prefix in os.environ.get("E2E_NOTEBOOKS", "").split(",") if prefix]
    paths = [p for p in sorted(NOTEBOOK_DIR.glob("*.ipynb")) if p.stem not in NOT_ON_GPUS and (not chosen or any(p.stem.startswith(c) for c in chosen))]
    print(f"parameters {overrides}; {len(paths)} notebooks", flush=True)
    results = []
    for path in paths:
        result = run_notebook(path, overrides)
        results.append(result)
        print(f"{'PASS' if result['ok'] else 'FAIL'} {result['notebook']} ({result['seconds']} s) {' '.join(result['gpuNotes'])}", flush=True)
        if result["problem"]:
            print(f"  {result['problem']}", flush=True)
        # after every notebook, so a run cut short by the machine's time limit keeps what finished
        if os.environ.get("OUT"):
            Path(os.environ["OUT"], "notebooks-e2e.json").write_text(json.dumps(results, indent=1))
    failed = [r["notebook"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} of {len(results)} notebooks passed" + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Executes one tutorial against the real distlab kernel, as the notebook test does.

Usage: python test/browser/execute_tutorial.py SOURCE.ipynb DEST.ipynb
Parameters as in test/kernel/test_notebooks.py (SIZE=small unless DISTLAB_NOTEBOOK_SIZE says
otherwise); a failing cell exits non-zero with the cell's error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
from test_notebooks import CELL_TIMEOUT, KERNEL_NAME, apply_parameters, parameter_overrides  # noqa: E402


def main(source: Path, dest: Path) -> None:
    notebook = nbformat.read(source, as_version=4)
    apply_parameters(notebook, parameter_overrides())
    client = NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT, startup_timeout=60,
                            resources={"metadata": {"path": str(source.parent)}})
    client.execute()
    nbformat.write(notebook, dest)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: execute_tutorial.py SOURCE.ipynb DEST.ipynb")
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""Every notebook under notebooks/ runs top to bottom against the real kernel.

Notebooks assert their own results in code (a wrong result throws), so an
unexpected error in any cell fails the test. Cells tagged `raises-exception`
must raise. Parameters (lines `const NAME: string = "value";` in the cell
tagged `parameters`) are overridden from DISTLAB_NOTEBOOK_<NAME> environment
variables; the suite runs with SIZE=small unless told otherwise. Executed
copies are kept under test-artifacts/notebooks/ for inspection.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from kernel_helpers import KERNEL_NAME, REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = Path(os.environ.get("DISTLAB_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "notebooks"
CELL_TIMEOUT = 300  # seconds; the largest tutorial cell trains a small model
DEFAULT_PARAMETERS = {"SIZE": "small"}
PARAMETER_LINE = re.compile(r'^const (?P<name>[A-Z_][A-Z0-9_]*): string = "(?P<value>[^"\\]*)";$', re.MULTILINE)


def parameter_overrides() -> dict[str, str]:
    overrides = dict(DEFAULT_PARAMETERS)
    for key, value in os.environ.items():
        if key.startswith("DISTLAB_NOTEBOOK_"):
            overrides[key.removeprefix("DISTLAB_NOTEBOOK_")] = value
    return overrides


def apply_parameters(notebook: nbformat.NotebookNode, overrides: dict[str, str]) -> list[str]:
    """Rewrites the `parameters` cell's string constants; returns the names it set."""
    applied: list[str] = []
    for cell in notebook.cells:
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue

        def replace(match: re.Match[str]) -> str:
            name = match["name"]
            if name not in overrides:
                return match[0]
            if '"' in overrides[name] or "\\" in overrides[name]:
                raise ValueError(f"parameter {name}: value {overrides[name]!r} may not contain quotes or backslashes")
            applied.append(name)
            return f'const {name}: string = "{overrides[name]}";'

        cell.source = PARAMETER_LINE.sub(replace, cell.source)
    return applied


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata.get("kernelspec", {}).get("name") == KERNEL_NAME, f"{path.name}: kernelspec is not {KERNEL_NAME}"
    apply_parameters(notebook, parameter_overrides())

    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        startup_timeout=60,
        allow_errors=False,  # only cells tagged raises-exception may fail
        resources={"metadata": {"path": str(path.parent)}},
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name}: a cell failed unexpectedly:\n{error}")
    finally:
        nbformat.write(notebook, ARTIFACTS / path.name)

    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" not in cell.get("metadata", {}).get("tags", []):
            continue
        errors = [output for output in cell.outputs if output.output_type == "error"]
        assert errors, f"{path.name}: cell {index} is tagged raises-exception but did not raise"


def test_parameters_override_only_named_string_constants() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('const SIZE: string = "full";\nconst OTHER: string = "kept";', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('const SIZE: string = "full";'),
    ])
    applied = apply_parameters(notebook, {"SIZE": "small"})
    assert applied == ["SIZE"]
    assert notebook.cells[0].source == 'const SIZE: string = "small";\nconst OTHER: string = "kept";'
    assert notebook.cells[1].source == 'const SIZE: string = "full";', "only the parameters cell is rewritten"
    with pytest.raises(ValueError, match="quotes"):
        apply_parameters(notebook, {"SIZE": 'bad"value'})

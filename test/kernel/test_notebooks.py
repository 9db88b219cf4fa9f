"""Every notebook under notebooks/ runs top to bottom against the real kernel.

Notebooks assert their own results in code (a wrong result throws), so an
unexpected error in any cell fails the test. Cells tagged `raises-exception`
must raise the error they promise: their metadata holds
`"distlab": {"raises": "<error class>", "match": ["<word>", ...]}`, and the
cell passes only if its error's ename is that class and its evalue contains
every listed word (a typo, a ReferenceError or another option's error fails). Parameters (lines `const NAME: string = "value";` in the cell
tagged `parameters`) are overridden from DISTLAB_NOTEBOOK_<NAME> environment
variables; the suite runs with SIZE=small unless told otherwise. Executed
copies are kept under test-artifacts/notebooks/ for inspection, with their
`jupyter nbconvert --to html` conversion beside them: every plot a notebook
shows must carry its Vega-Lite spec for JupyterLab and appear as SVG in the
HTML, where there is no Vega renderer.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from kernel_helpers import KERNEL_NAME, REPO_ROOT
from notebook_cells import PARAMETER_LINE, apply_parameters, expected_error_problem, parameter_overrides

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = Path(os.environ.get("DISTLAB_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "notebooks"
CELL_TIMEOUT = 300  # seconds; the largest tutorial cell trains a small model
VEGA_LITE = "application/vnd.vegalite.v5+json"
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

    problems = [problem for index, cell in enumerate(notebook.cells) if (problem := expected_error_problem(cell, index))]
    assert not problems, f"{path.name}:\n" + "\n".join(problems)

    html, _ = HTMLExporter().from_notebook_node(notebook)
    (ARTIFACTS / path.with_suffix(".html").name).write_text(html)
    plot_problems = plots_missing_from_html(notebook, html)
    assert not plot_problems, f"{path.name}:\n" + "\n".join(plot_problems)


SVG_IMAGE = re.compile(r'data-mime-type="image/svg\+xml"[^>]*>\s*<img [^>]*src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')


def svg_images(html: str) -> list[str]:
    """The SVG documents an nbconvert HTML page shows as image/svg+xml outputs."""
    return [base64.b64decode(match[1]).decode() for match in SVG_IMAGE.finditer(html)]


def plot_outputs(notebook: nbformat.NotebookNode) -> list[tuple[int, dict]]:
    """(cell index, output data) of every output carrying a Vega-Lite plot."""
    return [(index, output["data"]) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if VEGA_LITE in output.get("data", {})]


def plots_missing_from_html(notebook: nbformat.NotebookNode, html: str) -> list[str]:
    """Why a plot of the executed notebook would not show outside JupyterLab; empty when all do.

    Each plot output must carry its SVG, with the spec's axis titles and title, and no plotly
    JSON; the HTML must show that same SVG (nbconvert draws image/svg+xml as an <img> of a
    base64 data URL inside a jp-RenderedSVG output).
    """
    problems: list[str] = []
    shown_svgs = svg_images(html)
    lines = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code" and "lossPlot(" in cell.source]
    plotted = plot_outputs(notebook)
    if [index for index, _ in plotted] != lines:
        problems.append(f"cells {lines} call lossPlot, but cells {[index for index, _ in plotted]} show a Vega-Lite plot")
    for index, data in plotted:
        spec = data[VEGA_LITE]
        svg = data.get("image/svg+xml")
        if "application/vnd.plotly.v1+json" in data:
            problems.append(f"cell {index}: the plot still carries plotly JSON")
        if not isinstance(svg, str) or not svg.startswith("<svg"):
            problems.append(f"cell {index}: the plot has no image/svg+xml")
            continue
        if svg not in shown_svgs:
            problems.append(f"cell {index}: the HTML shows none of its {len(shown_svgs)} SVG images as the plot's SVG ({len(svg)} characters)")
        for axis in ("x", "y"):
            title = spec["encoding"][axis]["title"]
            if f"aria-label=\"{axis.upper()}-axis titled '{title}'" not in svg.replace("&#39;", "'"):
                problems.append(f"cell {index}: the SVG has no {axis} axis titled {title!r}")
        if f">{spec['title']}</text>" not in svg.replace("&amp;", "&"):
            problems.append(f"cell {index}: the SVG does not show the title {spec['title']!r}")
    return problems


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


def executed_cell(ename: str | None, evalue: str = "", tags: tuple[str, ...] = ("raises-exception",), promise: dict | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x", metadata={"tags": list(tags), **({"distlab": promise} if promise is not None else {})})
    if ename is not None:
        cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]
    return cell


def test_a_raises_exception_cell_must_raise_the_promised_class_and_words() -> None:
    promise = {"raises": "RangeError", "match": ["gossip.steps"]}
    kept = executed_cell("RangeError", "rank 0: RangeError: gossip.steps must be an integer >= 1, got 0", promise=promise)
    assert expected_error_problem(kept, 3) is None
    assert expected_error_problem(executed_cell("RangeError", "gossip.steps must be", promise={**promise, "match": "gossip.steps"}), 3) is None
    wrong_class = expected_error_problem(executed_cell("ReferenceError", "rank 0: ReferenceError: gosipSgd is not defined", promise=promise), 3)
    assert wrong_class is not None and "raised ReferenceError" in wrong_class
    wrong_words = expected_error_problem(executed_cell("RangeError", "gossip.lr must be in (0, Infinity], got 0", promise=promise), 3)
    assert wrong_words is not None and "['gossip.steps']" in wrong_words
    silent = expected_error_problem(executed_cell(None, promise=promise), 3)
    assert silent is not None and "did not raise" in silent
    unpromised = expected_error_problem(executed_cell("RangeError", "anything"), 3)
    assert unpromised is not None and "must say what it raises" in unpromised
    assert "must say" in (expected_error_problem(executed_cell("RangeError", "x", promise={"raises": "RangeError", "match": []}), 3) or "")
    untagged = expected_error_problem(executed_cell(None, tags=(), promise=promise), 3)
    assert untagged is not None and "not tagged" in untagged
    assert expected_error_problem(executed_cell(None, tags=()), 3) is None, "an ordinary cell promises nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_raises_exception_cell_states_its_error(path: Path) -> None:
    """Statically, without a kernel: each tagged cell names the error class and words it promises."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" not in cell.get("metadata", {}).get("tags", []):
            continue
        promise = cell.metadata.get("distlab", {})
        assert isinstance(promise.get("raises"), str) and promise.get("match"), (
            f'{path.name}: cell {index} is tagged raises-exception but has no metadata "distlab": {{"raises": ..., "match": [...]}}')


# 09 compares the backends cell by cell (threads, then processes, then agents), so its cells name
# their backend themselves.
BACKENDS_CHOSEN_BY_THE_TUTORIAL = {"09-remote-hosts"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_tutorial_runs_on_the_backend_its_parameters_name(path: Path) -> None:
    """`BACKEND = "gpus"` (or DISTLAB_NOTEBOOK_BACKEND) must move every rank of a tutorial."""
    if path.stem in BACKENDS_CHOSEN_BY_THE_TUTORIAL:
        pytest.skip(f"{path.stem} names each cell's backend itself")
    notebook = nbformat.read(path, as_version=4)
    parameters = [c.source for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert parameters and any(m["name"] == "BACKEND" for m in PARAMETER_LINE.finditer(parameters[0])), (
        f'{path.name}: its parameters cell has no `const BACKEND: string = "threads";`'
    )
    for index, cell in enumerate(notebook.cells):
        first = cell.source.split("\n", 1)[0] if cell.cell_type == "code" else ""
        if first.startswith("%%distributed"):
            assert "--backend $BACKEND" in first, f"{path.name} cell {index}: `{first}` does not take --backend $BACKEND"

"""A notebook saved with its outputs shows each timeline outside JupyterLab.

The quickstart tutorial is executed with nbclient, saved, and converted with
`jupyter nbconvert --to html`, as GitHub's and nbviewer's renderers do: they
know nothing of `application/vnd.distlab.timeline+json` and show the
bundle's `text/html` instead. Every timeline output of the notebook must be
in the HTML as its static SVG picture, with one row per rank in rank order.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from kernel_helpers import KERNEL_NAME, REPO_ROOT
from test_notebooks import apply_parameters, parameter_overrides

MIME = "application/vnd.distlab.timeline+json"
TUTORIAL = REPO_ROOT / "notebooks" / "00-quickstart.ipynb"
SVG = re.compile(r'<svg[^>]*aria-label="distlab timeline"[^>]*>(.*?)</svg>', re.S)
RANK_LABEL = re.compile(r">rank (\d+)</text>")


def test_an_executed_tutorial_converted_to_html_shows_each_timeline_with_one_row_per_rank(tmp_path: Path) -> None:
    notebook = nbformat.read(TUTORIAL, as_version=4)
    apply_parameters(notebook, parameter_overrides())
    NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=300, startup_timeout=60, allow_errors=False,
                   resources={"metadata": {"path": str(TUTORIAL.parent)}}).execute()
    saved = tmp_path / TUTORIAL.name
    nbformat.write(notebook, saved)

    timelines = [output["data"][MIME] for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.get("outputs", []) if MIME in output.get("data", {})]
    assert timelines, "the executed tutorial kept no timeline output"
    assert all(not payload["live"] for payload in timelines), "a saved timeline is still the live one"

    converted = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(tmp_path), str(saved)],
                               capture_output=True, text=True, timeout=300)
    assert converted.returncode == 0, converted.stderr
    html = (tmp_path / TUTORIAL.with_suffix(".html").name).read_text()

    pictures = SVG.findall(html)
    assert len(pictures) == len(timelines), f"{len(pictures)} timeline pictures in the HTML for {len(timelines)} timeline outputs"
    for picture, payload in zip(pictures, timelines):
        ranks = [rank["rank"] for rank in payload["ranks"]]
        assert [int(rank) for rank in RANK_LABEL.findall(picture)] == ranks, f"rows {RANK_LABEL.findall(picture)} for ranks {ranks}"
        assert "<rect" in picture, "a timeline picture with no bars"
    assert html.count('class="distlab-timeline-summary"') == len(timelines)

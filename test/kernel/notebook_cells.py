"""What the notebook runners share: parameters and the error a cell promises.

A tutorial's cell tagged `parameters` holds lines `const NAME: string = "value";`;
runners override them from DISTLAB_NOTEBOOK_<NAME> environment variables (SIZE
is "small" unless told otherwise). A cell tagged `raises-exception` promises its
error in metadata.distlab = {"raises": ename, "match": [words]}.

Works on nbformat's notebook nodes and on plain dicts read with `json` (the GPU
machine's runner, test/gpu/notebooks_e2e.py, has no nbformat): a notebook is
{"cells": [...]}, a cell's source a string.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

DEFAULT_PARAMETERS = {"SIZE": "small"}
PARAMETER_LINE = re.compile(r'^const (?P<name>[A-Z_][A-Z0-9_]*): string = "(?P<value>[^"\\]*)";$', re.MULTILINE)


def parameter_overrides() -> dict[str, str]:
    overrides = dict(DEFAULT_PARAMETERS)
    for key, value in os.environ.items():
        if key.startswith("DISTLAB_NOTEBOOK_"):
            overrides[key.removeprefix("DISTLAB_NOTEBOOK_")] = value
    return overrides


def apply_parameters(notebook: Mapping[str, Any], overrides: dict[str, str]) -> list[str]:
    """Rewrites the `parameters` cell's string constants; returns the names it set."""
    applied: list[str] = []
    for cell in notebook["cells"]:
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

        cell["source"] = PARAMETER_LINE.sub(replace, cell["source"])
    return applied


def expected_error_problem(cell: Mapping[str, Any], index: int) -> str | None:
    """Why an executed cell breaks its error promise, or None when it keeps it.

    A cell tagged `raises-exception` must carry metadata.distlab = {"raises": ename, "match": [words]}
    and end with exactly one error of that ename whose evalue contains every word; a cell with the
    metadata must carry the tag (without it nbclient would stop the notebook instead).
    """
    if cell.get("cell_type") != "code":
        return None
    metadata = cell.get("metadata", {})
    tagged = "raises-exception" in metadata.get("tags", [])
    promise = metadata.get("distlab", {})
    if not tagged:
        return f"cell {index}: metadata.distlab.raises is set but the cell is not tagged raises-exception" if "raises" in promise else None
    ename, words = promise.get("raises"), promise.get("match")
    if isinstance(words, str):
        words = [words]
    if not isinstance(ename, str) or not ename or not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
        return (f'cell {index}: tagged raises-exception, so its metadata must say what it raises: '
                f'"distlab": {{"raises": "RangeError", "match": ["the option it names"]}}; got {promise!r}')
    errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    if not errors:
        return f"cell {index}: should raise {ename} mentioning {words}, but did not raise"
    error = errors[-1]
    if error.get("ename") != ename:
        return f"cell {index}: should raise {ename} mentioning {words}, raised {error.get('ename')}: {error.get('evalue')}"
    missing = [word for word in words if word not in error.get("evalue", "")]
    if missing:
        return f"cell {index}: {ename} should mention {missing}, said: {error.get('evalue')}"
    return None

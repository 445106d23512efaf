# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The notebooks in notebooks/ run top to bottom (code cells executed in order)."""

import json

import matplotlib.pyplot as plt
import pytest

from galaxyml.conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs(notebook, monkeypatch):
    cells = json.loads(notebook.read_text())["cells"]
    source = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    monkeypatch.chdir(notebook.parent)  # relative paths as when opened in Jupyter
    namespace = {"__name__": "__notebook__"}
    try:
        exec(compile(source, str(notebook), "exec"), namespace)  # the cells assert their results
    finally:
        plt.close("all")

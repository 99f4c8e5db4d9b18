"""Every notebook runs top to bottom against solutions/ on the real test stack, and is committed clean."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(nb.name.startswith("00_") for nb in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    data = json.loads(path.read_text())
    dirty = [i for i, cell in enumerate(data["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, stack_urls, tmp_path):
    nb = nbformat.read(path, as_version=4)
    # The kernel talks over local socket files, not TCP ports: two test runs on one
    # machine (test slots) can never pick the same port for their kernels.
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    client = NotebookClient(nb, km=km, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    # The kernel inherits this process's environment: the test stack's ports, SECKILL_IMPL=solutions.
    assert os.environ["SECKILL_IMPL"] == "solutions"
    client.execute()
    nbformat.write(nb, tmp_path / path.name)  # kept for a look when something breaks
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # stderr shows as a pink error box in JupyterLab: only errors may go there, and this run has none.
    stderr = [(i, o["text"]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert not stderr, f"{path.name}: cells write to stderr though nothing failed: {stderr}"

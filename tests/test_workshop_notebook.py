"""examples/workshop.ipynb executes top to bottom in quick mode (needs the `notebook` extra)."""
import os
from pathlib import Path

import numpy as np
import pytest
from workshop_data import make_tiny_workshop_data

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "workshop.ipynb"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Open_I_abd_vs_CXRs"


def tiny_dataset(root):
    return make_tiny_workshop_data(root, train_per_class=5, val_per_class=5, seed=2)


def test_notebook_runs_in_quick_mode(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first_code.source.startswith("QUICK = True"), "the first code cell must set QUICK = True"
    data = SHARED_DATA if SHARED_DATA.is_dir() else tiny_dataset(tmp_path / "data")
    monkeypatch.setenv("MINIDL_DATA", str(data))
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))       # no cached ImageNet weights
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    assert outputs.count("Predicted: [[") == 2
    assert "{'openI_CXR': 0, 'openI_abd_xray': 1}" in outputs
    images = sum(1 for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
                 if "image/png" in output.get("data", {}))
    # augmentations, curves, 2 TEST images, confusion matrix, ROC, 2 Grad-CAM pictures
    assert images >= 8

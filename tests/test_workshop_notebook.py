"""examples/workshop.ipynb: committed with its outputs; executes top to bottom in quick mode and,
on the real images, learns something once batch-norm statistics are re-estimated; stops with
one clear message when the images cannot be found. Executing needs the ``notebook`` extra.

The notebook runs as ``examples/execute_notebooks.py`` runs it for the committed copy: offline on
purpose (an empty MINIDL_HOME and downloads sent to a closed local port), so InceptionV3 starts
from random weights whatever the machine has cached or can reach.
"""
import json
import os
import re
from pathlib import Path

import pytest
from workshop_data import make_tiny_workshop_data

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "workshop.ipynb"
SHARED_DATA = ROOT.parent / "shared" / "data" / "Open_I_abd_vs_CXRs"
MAX_BYTES = 2_000_000
# A code cell whose source matches this prints or draws, so the committed copy must show outputs.
PRODUCES_OUTPUT = re.compile(r"\bprint\(|plt\.show\(|\bplot_\w+\(|show_augmentations\(")
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|private|var)/|ipykernel_\d+|[A-Za-z]:\\\\")
VALIDATION_ACCURACY = re.compile(r"^validation accuracy (\d\.\d+), AUC", re.M)


# ------------------------------------------------------------------ helpers (also used by test_concepts_notebook)
def outputs_text(cells):
    """Every text output of the code cells, carriage returns as newlines (progress bars)."""
    parts = []
    for cell in cells:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            parts.append("".join(output.get("text", "")))
            parts += ["".join(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts).replace("\r", "\n")


def image_count(cells):
    return sum(1 for cell in cells if cell["cell_type"] == "code" for output in cell.get("outputs", [])
               if "image/png" in output.get("data", {}))


def committed_output_problems(path, min_images):
    """What is wrong with the outputs committed in ``path`` (an empty list: nothing)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook["cells"]
    problems = []
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    counts = [cell.get("execution_count") for cell in code]
    if counts != list(range(1, len(code) + 1)):
        problems.append(f"not executed top to bottom in one run: execution counts {counts}")
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        if PRODUCES_OUTPUT.search("".join(cell["source"])) and not cell.get("outputs"):
            problems.append(f"cell {index} prints or draws but has no outputs")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index} has an error output: {output.get('ename')}")
        found = MACHINE_PATH.search(outputs_text([cell]))
        if found:
            problems.append(f"cell {index}'s outputs name a path of the machine that ran it: {found.group()!r}")
    if image_count(cells) < min_images:
        problems.append(f"{image_count(cells)} image/png outputs, expected at least {min_images}")
    if path.stat().st_size > MAX_BYTES:
        problems.append(f"{path.stat().st_size:,} bytes, more than {MAX_BYTES:,}")
    return problems


def missing_source_files(path):
    """Files of this repository that the notebook's text names (`minidl/...py`) but that do not exist."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    named = {name for cell in cells for name in
             re.findall(r"(?:minidl|examples|tests)/[\w/]+\.(?:py|md)", "".join(cell["source"]))}
    return sorted(name for name in named if not (ROOT / name).is_file())


def missing_committed_outputs(path, executed):
    """Cells that produced outputs when executed now but have none in the committed copy."""
    committed = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert len(committed) == len(executed.cells)
    return [index for index, (old, new) in enumerate(zip(committed, executed.cells))
            if new.cell_type == "code" and new.get("outputs") and not old.get("outputs")]


def kernel_environment(tmp_path, **variables):
    """This process's environment, offline on purpose, with minidl first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MINIDL_HOME"] = str(tmp_path / "home")                  # no cached weights, no cached data
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = "http://127.0.0.1:9"                         # every download fails at once
    for name in ("no_proxy", "NO_PROXY", "MINIDL_DATA"):
        env.pop(name, None)
    env.update({name: str(value) for name, value in variables.items()})
    return env


def execute(notebook, cwd, env, timeout=600):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    for cell in notebook.cells:                       # forget the committed run's outputs and counts
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return notebook


# ------------------------------------------------------------------ the committed copy
def test_committed_notebook_has_its_outputs():
    assert committed_output_problems(NOTEBOOK, min_images=8) == []
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    text = outputs_text(cells)
    # the committed run is the offline one: random weights, batch-norm statistics re-estimated
    assert "quick mode continues with weights=None" in text
    assert "re-estimated from the training images before each validation" in text
    assert text.count("Predicted: [[") == 2
    accuracy = VALIDATION_ACCURACY.search(text)
    assert accuracy and float(accuracy.group(1)) > 0.5, text


def test_files_the_notebook_names_exist():
    assert missing_source_files(NOTEBOOK) == []


def test_settings_cell_comes_first():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    lines = first_code.source.splitlines()
    assert lines[0].startswith("QUICK = True"), "the first code cell must set QUICK = True"
    assert lines[1].startswith("DATA_DIR = None"), "the first code cell must set DATA_DIR = None"


# ------------------------------------------------------------------ executing it
def test_notebook_runs_in_quick_mode(tmp_path):
    """On the real images when ../shared has them (then validation must beat chance), else on a
    tiny stand-in (then only the structure is checked)."""
    nbformat = pytest.importorskip("nbformat")
    real = SHARED_DATA.is_dir()
    data = SHARED_DATA if real else make_tiny_workshop_data(tmp_path / "data", train_per_class=5,
                                                            val_per_class=5, seed=2)
    notebook = execute(nbformat.read(NOTEBOOK, as_version=4), tmp_path,
                       kernel_environment(tmp_path, MINIDL_DATA=data))
    text = outputs_text(notebook.cells)
    predictions_cell = next(cell for cell in notebook.cells if "print('Predicted:'" in cell.source)
    assert text.count("Predicted: [[") == 2, predictions_cell.outputs
    assert "{'openI_CXR': 0, 'openI_abd_xray': 1}" in text
    assert "quick mode continues with weights=None" in text
    assert "re-estimated from the training images before each validation" in text
    # augmentations, curves, 2 TEST images, confusion matrix, ROC, 2 Grad-CAM pictures
    assert image_count(notebook.cells) >= 8
    assert missing_committed_outputs(NOTEBOOK, notebook) == []
    accuracy = VALIDATION_ACCURACY.search(text)
    assert accuracy, text
    if real:
        # With Keras's moving statistics this run stays at 0.5 (one class for every image).
        assert float(accuracy.group(1)) > 0.5, text


@pytest.mark.parametrize("where", ["a folder without the images", "nowhere: offline, nothing cached"])
def test_missing_data_stops_at_the_data_cell_with_one_message(tmp_path, where):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    if where.startswith("a folder"):
        settings = next(cell for cell in notebook.cells if cell.cell_type == "code")
        settings.source = settings.source.replace("DATA_DIR = None", f"DATA_DIR = {str(tmp_path)!r}", 1)
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        execute(notebook, tmp_path, kernel_environment(tmp_path), timeout=120)
    data_cell = next(i for i, cell in enumerate(notebook.cells)
                     if cell.cell_type == "code" and "find_dataset(DATA_DIR)" in cell.source)
    errors = [(i, output) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert [i for i, _ in errors] == [data_cell]
    error = errors[0][1]
    assert error["ename"] == "DatasetUnavailableError"
    assert "Set DATA_DIR in the first code cell" in error["evalue"]
    assert "MINIDL_DATA" in error["evalue"]
    later = [cell.get("execution_count") for cell in notebook.cells[data_cell + 1:] if cell.cell_type == "code"]
    assert all(count is None for count in later)         # nothing ran after it: no NameError cascade

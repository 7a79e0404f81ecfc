"""examples/concepts.ipynb: committed with its outputs, and it executes top to bottom and reports
what it says it reports (executing needs the ``notebook`` extra)."""
import json
import re
from pathlib import Path

import pytest
from test_workshop_notebook import (committed_output_problems, execute, image_count, kernel_environment,
                                    missing_committed_outputs, missing_source_files, outputs_text)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "concepts.ipynb"


def check_concepts_outputs(text):
    assert "im2col @ : [-8. -8. -8. -8.]" in text
    assert re.search(r"max \|layer - numeric\| = \d\.\d+e-(09|1\d)", text), text
    assert "test accuracy" in text


def test_committed_concepts_notebook_has_its_outputs():
    assert committed_output_problems(NOTEBOOK, min_images=1) == []
    check_concepts_outputs(outputs_text(json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]))


def test_files_the_concepts_notebook_names_exist():
    assert missing_source_files(NOTEBOOK) == []


def test_concepts_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    # in examples/, its own folder: it imports examples/quickstart.py
    notebook = execute(nbformat.read(NOTEBOOK, as_version=4), EXAMPLES, kernel_environment(tmp_path), timeout=120)
    check_concepts_outputs(outputs_text(notebook.cells))
    assert image_count(notebook.cells) >= 1
    assert missing_committed_outputs(NOTEBOOK, notebook) == []

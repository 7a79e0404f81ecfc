"""The learning path stays honest: the README's claims, the examples, the exercises and the
concepts notebook all run (quick modes) and report what they say they report."""
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"


def run_script(*args, timeout=180):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------ examples
def test_gradcheck_tour_quick_passes_every_layer_and_catches_the_broken_one():
    result = run_script(EXAMPLES / "gradcheck_tour.py", "--quick")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.rstrip().endswith((" ok", " FAIL"))]
    assert len(rows) >= 8, result.stdout
    assert all(line.rstrip().endswith(" ok") for line in rows), result.stdout
    names = " ".join(rows)
    for layer in ("Conv2D 1x7", "stride 2 'same'", "BatchNormalization, training", "MaxPooling2D", "Dense",
                  "Dropout", "Concatenate", "binary_crossentropy"):
        assert layer in names
    assert "CAUGHT" in result.stdout


def test_gradcheck_tour_broken_batchnorm_fails_and_correct_one_passes():
    sys.path.insert(0, str(EXAMPLES))
    try:
        tour = importlib.import_module("gradcheck_tour")
    finally:
        sys.path.remove(str(EXAMPLES))
    import minidl
    from minidl.layers import BatchNormalization
    x = np.random.default_rng(5).standard_normal((4, 3, 3, 2)) * 2 + 1
    assert not minidl.check_gradients(tour.BatchNormalizationMissingTerms(), x).passed(1e-6)
    assert minidl.check_gradients(BatchNormalization(), x).passed(1e-6)


def test_custom_layer_example_runs_and_its_checks_pass():
    result = run_script(EXAMPLES / "custom_layer.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert result.stdout.count("-> ok") >= 4          # three layer checks + the whole model
    assert "same predictions: True" in result.stdout


# ------------------------------------------------------------------ README
def test_readme_starts_with_the_two_setup_commands():
    lines = README.read_text().splitlines()
    fence = lines.index("```")
    assert lines[0].startswith("# ")
    description = [line for line in lines[1:fence] if line.strip()]
    assert len(" ".join(description).split(". ")) <= 3
    assert lines[fence + 1] == ("pip install -e . && python examples/workshop.py "
                                "--data ../shared/data/Open_I_abd_vs_CXRs --weights none")
    assert lines[fence + 2] == 'pip install -e ".[test]" && python -m pytest'
    assert lines[fence + 3] == "```"


def _resolve(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def test_readme_keras_table_names_existing_modules_and_files():
    text = README.read_text()
    section = text.split("## Keras → minidl")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= 20
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        minidl_name, path = cells[1].strip("`"), cells[2].strip("`")
        assert minidl_name.startswith("minidl"), row
        assert _resolve(minidl_name) is not None, row
        assert (ROOT / path).is_file(), row
        module = _resolve(minidl_name)
        source = getattr(module, "__file__", None) or getattr(importlib.import_module(
            getattr(module, "__module__", "minidl")), "__file__", "")
        assert Path(source).resolve().is_file()
    for path in re.findall(r"`(minidl/[\w/]+\.py)`", text):      # the reading order names real files
        assert (ROOT / path).is_file(), path
    for path in re.findall(r"\]\(((?:examples|weights|benchmarks)/[^)]+)\)", text):
        if path != "benchmarks/README.md":                       # written by another issue
            assert (ROOT / path).is_file(), path


def test_the_reading_order_starts_on_the_reference_path():
    section = README.read_text().split("## Read the source in this order")[1].split("\n## ")[0]
    before_first_step = section.split("\n1. ")[0]
    assert "MINIDL_KERNELS=reference" in before_first_step and "set_kernel_path" in before_first_step
    steps = re.findall(r"`(minidl/[\w/]+\.py)`", section.split("**The engine**")[0])
    assert "minidl/kernels/reference/conv.py" in steps and "minidl/layers/base.py" == steps[0]
    assert not [step for step in steps if "/fast/" in step or "/engine/" in step]   # the engine comes after


def test_every_minidl_path_the_docs_name_exists():
    """Docstrings, READMEs, examples and notebooks name files that exist (files move; docs must follow)."""
    places = [*ROOT.glob("minidl/**/*.py"), *ROOT.glob("minidl/**/*.md"), *ROOT.glob("examples/**/*.py"),
              *ROOT.glob("examples/*.ipynb"), README, ROOT / "weights" / "README.md"]
    missing = sorted({f"{place.relative_to(ROOT)}: {path}" for place in places
                      for path in re.findall(r"minidl/[\w/]+\.(?:py|md)", place.read_text())
                      if not (ROOT / path).exists()})
    assert missing == []


PROGRESS = re.compile(r"^(\d+)/\1 \[=+\] - \d+s \d+m?s/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} "
                      r"- val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}$")
FINAL = re.compile(r"^Final validation accuracy: \d\.\d{4} \(loss \d\.\d{4}\) after \d+\.\d s of training$")


def _structure(lines):
    kinds = []
    for line in lines:
        if re.fullmatch(r"Epoch \d+/\d+", line):
            kinds.append("epoch")
        elif PROGRESS.match(line):
            kinds.append("progress")
        elif FINAL.match(line):
            kinds.append("final")
    return kinds


def test_readme_quickstart_output_has_the_shape_of_a_real_run():
    block = README.read_text().split("## Quickstart")[1].split("```\nEpoch")[1].split("```")[0]
    pasted = ("Epoch" + block).strip().splitlines()
    assert _structure(pasted) == ["epoch", "progress"] * 5 + ["final"], pasted
    result = run_script(EXAMPLES / "quickstart.py", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    real = [line.split("\r")[-1] for line in result.stdout.splitlines()]
    assert _structure(real) == ["epoch", "progress", "final"], result.stdout

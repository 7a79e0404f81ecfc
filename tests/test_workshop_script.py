"""examples/workshop.py end to end: outputs, prediction lines, seeds, Ctrl-C and --resume.

Runs in-process (``main(argv)``) on a tiny generated dataset at 75x75 and,
when the shared data exists, in ``--quick`` mode on the real workshop images.
"""
import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minidl
from workshop_data import make_tiny_workshop_data

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "workshop.py"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Open_I_abd_vs_CXRs"
PREDICTION_LINE = re.compile(r"^Predicted: \[\[[-+0-9.e]+\]\] (Chest X-ray|Abd X-ray)$")
PNG_FILES = ["training_curves.png", "confusion_matrix.png", "roc_curve.png", "augmentations.png",
             "gradcam_chest2.png", "gradcam_abd2.png"]


def load_script():
    spec = importlib.util.spec_from_file_location("workshop_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_workshop(argv):
    minidl.clear_session()
    return load_script().main([str(a) for a in argv])


def make_tiny_dataset(folder):
    return make_tiny_workshop_data(folder)


TINY_ARGS = ["--quick", "--weights", "none", "--image-size", 75, "--epochs", 2, "--steps", 1,
             "--validation-steps", 1, "--seed", 7]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory):
    """An uninterrupted 2-epoch run: (exit code, out folder, printed text)."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("runs") / "reference"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = run_workshop(TINY_ARGS + ["--data", tiny_data, "--out", out])
    return code, out, buffer.getvalue()


def check_outputs(out, epochs, test_names=("abd2", "chest2")):
    history = json.loads((out / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(history[key]) == epochs and all(np.isfinite(history[key]))
    with open(out / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert float(rows[-1]["val_loss"]) == pytest.approx(history["val_loss"][-1])
    for name in PNG_FILES:
        with Image.open(out / name) as picture:
            picture.verify()
            assert picture.format == "PNG"
    for stem in test_names:
        assert (out / f"gradcam_{stem}.png").is_file()
    evaluation = json.loads((out / "evaluation.json").read_text())
    matrix = np.array(evaluation["confusion_matrix"])
    assert matrix.shape == (2, 2) and matrix.sum() == len(evaluation["labels"])
    assert 0.0 <= evaluation["auc"] <= 1.0
    report = (out / "report.md").read_text()
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (out / link).is_file(), f"report.md links to a missing file {link}"
    for name in ("training_curves.png", "roc_curve.png", "confusion_matrix.png"):
        assert name in report
    from minidl.weights import detect_format, read_weights_file
    assert detect_format(out / "best_model.h5") == "minidl"
    _, layers = read_weights_file(out / "best_model.h5")
    assert sum(a.size for layer in layers for a in layer.arrays) == 22_327_585
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_completed"] == epochs and state["finished"]
    return history


def test_quick_run_on_tiny_data(reference_run):
    code, out, printed = reference_run
    assert code == 0
    check_outputs(out, epochs=2)
    lines = printed.splitlines()
    predictions = [line for line in lines if line.startswith("Predicted:")]
    assert len(predictions) == 2 and all(PREDICTION_LINE.match(line) for line in predictions)
    assert "22,327,585 parameters" in printed
    assert re.search(r"\[estimate\] about [0-9.]+ s per training step", printed)
    assert re.search(r"Total wall time: [0-9.]+ s", printed)
    assert "Epoch 2/2" in printed
    # the label follows class_indices: score >= 0.5 means class index 1 (openI_abd_xray)
    for line in predictions:
        score = float(re.search(r"\[\[(.*)\]\]", line).group(1))
        assert line.endswith("Abd X-ray" if score >= 0.5 else "Chest X-ray")


def test_interrupt_then_resume_repeats_the_uninterrupted_run(reference_run, tiny_data, tmp_path, capsys):
    _, reference_out, _ = reference_run
    out = tmp_path / "interrupted"
    # Ctrl-C after the first step of epoch 2 (KeyboardInterrupt raised inside fit)
    code = run_workshop(TINY_ARGS + ["--data", tiny_data, "--out", out, "--simulate-interrupt", "2:1"])
    assert code == 130
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_completed"] == 1 and state["interrupted"]["during_epoch"] == 2
    assert (out / "checkpoint_interrupted.h5").is_file() and (out / "checkpoint_last.h5").is_file()
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 1
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    assert "--resume" in capsys.readouterr().err

    code = run_workshop(["--resume", out])
    assert code == 0
    resumed = check_outputs(out, epochs=2)
    reference = json.loads((reference_out / "history.json").read_text())
    # same seed, same run: the resumed history equals the uninterrupted one
    for key in reference:
        np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-5, err_msg=key)


@pytest.mark.slow
def test_a_different_seed_gives_a_different_run(reference_run, tiny_data, tmp_path):
    # (same seed -> same run is checked by the resume test: two runs, identical histories)
    _, reference_out, _ = reference_run
    reference = json.loads((reference_out / "history.json").read_text())
    args = TINY_ARGS[:-1] + [8, "--epochs", 1, "--data", tiny_data, "--out", tmp_path / "other"]
    assert run_workshop(args) == 0
    other = json.loads((tmp_path / "other" / "history.json").read_text())
    assert other["loss"][0] != pytest.approx(reference["loss"][0], rel=1e-6)


def test_imagenet_weights_unavailable_exits_with_advice(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))
    import minidl.weights.download as download
    monkeypatch.setattr(download, "DEFAULT_BASE_URLS", ("http://127.0.0.1:9/",))   # nothing listens
    code = run_workshop(["--quick", "--image-size", 75, "--data", tiny_data, "--out", tmp_path / "w"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--weights none" in err and "inception_v3" in err.lower()
    assert not (tmp_path / "w" / "history.json").exists()


def test_missing_data_folder_is_reported(tmp_path, capsys):
    assert run_workshop(["--quick", "--data", tmp_path / "nowhere", "--out", tmp_path / "o"]) == 3
    assert "does not hold TRAIN/ and VAL/" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"workshop data not found at {SHARED_DATA}")
def test_quick_run_on_the_workshop_data(tmp_path, capsys):
    out = tmp_path / "real"
    assert run_workshop(["--quick", "--weights", "none", "--seed", 0, "--data", SHARED_DATA, "--out", out]) == 0
    printed = capsys.readouterr().out
    check_outputs(out, epochs=2)
    predictions = [line for line in printed.splitlines() if line.startswith("Predicted:")]
    assert len(predictions) == 2 and all(PREDICTION_LINE.match(line) for line in predictions)
    assert "{'openI_CXR': 0, 'openI_abd_xray': 1}" in printed
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["labels"] == [0] * 5 + [1] * 5


@pytest.mark.slow
def test_real_ctrl_c_in_a_subprocess(tiny_data, tmp_path):
    """A real SIGINT during epoch 2 of a 3-epoch run; then --resume completes the run."""
    out = tmp_path / "sigint"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, str(SCRIPT)] + ["--quick", "--weights", "none", "--image-size", "75", "--epochs", "3", "--steps", "6", "--seed", "7", "--data", str(tiny_data), "--out", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "history.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    state = json.loads((out / "state.json").read_text())
    assert 1 <= state["epochs_completed"] < 3
    resumed = subprocess.run([sys.executable, str(SCRIPT), "--resume", str(out)], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    check_outputs(out, epochs=3)


def _trainable_layers(out):
    """Indices in model.layers of the trainable layers (the input layer left out), and the optimizer."""
    from minidl.models import load_model
    model = load_model(out / "checkpoint_last.h5")
    return ([index for index, layer in enumerate(model.layers) if layer.trainable and index > 0],
            type(model.optimizer).__name__)


def test_fine_tune_from_runs_keras_two_phases_and_resumes_across_them(tiny_data, tmp_path, capsys):
    args = ["--quick", "--weights", "none", "--image-size", 75, "--steps", 1, "--validation-steps", 1,
            "--seed", 3, "--data", tiny_data]
    head_only = tmp_path / "head_only"
    assert run_workshop(args + ["--epochs", 1, "--fine-tune-from", "mixed8", "--head-epochs", 1,
                                "--out", head_only]) == 0
    trainable, optimizer = _trainable_layers(head_only)
    assert trainable == [311] and optimizer == "Adam"                # phase 1: only the head trains
    assert "Fine-tuning" not in capsys.readouterr().out
    code = run_workshop(["--resume", head_only, "--epochs", 2])       # an explicit --epochs extends the run
    assert code == 0
    assert "Fine-tuning from layer 248 ('mixed8') on" in capsys.readouterr().out
    trainable, optimizer = _trainable_layers(head_only)
    assert trainable == list(range(248, 312)) and optimizer == "SGD"  # phase 2: mixed8 on, SGD
    assert len(json.loads((head_only / "history.json").read_text())["loss"]) == 2
    report = (head_only / "report.md").read_text()
    assert "head only for 1 epoch(s), then fine-tuning from layer mixed8" in report


def test_fine_tune_from_and_freeze_base_together_are_refused(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_workshop(TINY_ARGS + ["--data", tiny_data, "--out", tmp_path, "--freeze-base", "--fine-tune-from", 249])
    assert "give one of them" in capsys.readouterr().err

"""The teaching path stays a textbook: what a learner reads and steps through is the concept only.

* ``MINIDL_KERNELS=reference``: one training step of a small Conv2D-BN-ReLU-MaxPool-GAP-Dense
  model enters at most 20 minidl files and 75 functions (counted with ``sys.setprofile``
  as distinct (file, function) pairs), and ``predict`` runs each layer's own ``forward``;
* on that path a training step and a predict of InceptionV3 + the workshop head run
  without importing Numba and without starting a thread (Python's or the OS's);
* the reference path and the engine give the same outputs and parameter gradients for
  InceptionV3 + the head: in float64 within 1e-10 relative, every output and gradient,
  with Winograd, chunks, fused inference and the engine's backward walk all in play; in
  float32 at the workshop's size within 1e-4 for the outputs, the loss and the head's
  gradients (see the float32 test for why not every gradient of the base);
* the learner's files name no engine concept, and the custom-layer example uses only
  public names.
"""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import applications, config
from minidl.kernels.fast import winograd
from minidl.layers import (Activation, BatchNormalization, Conv2D, Dense, Dropout, GlobalAveragePooling2D, Input,
                           MaxPooling2D)
from minidl.models import Model, Sequential
from minidl.optimizers import Adam
from random_batch_norms import randomize_batch_norms

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minidl"


def _small_model():
    inputs = Input(shape=(8, 8, 3))
    x = Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = Activation("relu")(BatchNormalization()(x))
    x = GlobalAveragePooling2D()(MaxPooling2D()(x))
    model = Model(inputs, Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _entered_during(call):
    """(files, (file, function) pairs) of minidl entered while ``call()`` runs."""
    root = str(PACKAGE)
    entered = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            entered.add((frame.f_code.co_filename, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return {file for file, _ in entered}, entered


def test_a_reference_training_step_enters_at_most_20_files_and_75_functions():
    model = _small_model()
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 3), dtype=np.float32)
    y = np.array([0, 1, 1, 0], np.float32)
    with config.using_kernel_path("reference"):
        model.train_on_batch(x, y)                  # the first step creates Adam's slots
        files, functions = _entered_during(lambda: model.train_on_batch(x, y))
    names = sorted(str(Path(f).relative_to(PACKAGE)) for f in files)
    assert len(files) <= 20, names
    assert len(functions) <= 75, sorted(f"{Path(f).relative_to(PACKAGE)}:{name}" for f, name in functions)
    assert not any("fast" in name or "engine/" in name and name != "engine/__init__.py" for name in names), names


def test_reference_predict_runs_each_layers_own_forward():
    model = _small_model()
    calls = []
    for layer in model.layers[1:]:
        original = layer.forward
        layer.forward = lambda inputs, training=False, _layer=layer, _original=original: (
            calls.append(_layer.name) or _original(inputs, training=training))
    x = np.random.default_rng(1).random((3, 8, 8, 3), dtype=np.float32)
    with config.using_kernel_path("reference"):
        model.predict(x, batch_size=3)
    assert calls == [layer.name for layer in model.layers[1:]]


_REFERENCE_INCEPTION = """
import json, os, sys, threading
import numpy as np
os_threads_before = len(os.listdir("/proc/self/task"))
sys.path.insert(0, sys.argv[1])
from bench_step import build_workshop_model
from minidl.applications import InceptionV3
base = InceptionV3(weights=None, include_top=False, input_shape=(299, 299, 3))
model = build_workshop_model(base)
x = np.random.default_rng(0).random((2, 299, 299, 3), dtype=np.float32)
before = [p.value.copy() for p in model.trainable_weights]
loss = model.train_on_batch(x, np.array([0.0, 1.0]))
moved = sum(not np.array_equal(a, p.value) for a, p in zip(before, model.trainable_weights))
predictions = model.predict(x, batch_size=2)
print(json.dumps({"numba": "numba" in sys.modules, "python_threads": threading.active_count(),
                  "os_threads_started": len(os.listdir("/proc/self/task")) - os_threads_before,
                  "loss": float(loss[0]), "moved": moved, "parameters": len(before),
                  "predictions": predictions.ravel().tolist()}))
"""


def test_reference_path_trains_and_predicts_inception_without_numba_or_threads():
    env = dict(os.environ, MINIDL_KERNELS="reference")
    completed = subprocess.run([sys.executable, "-c", _REFERENCE_INCEPTION, str(ROOT / "benchmarks")],
                               capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["numba"] is False
    assert result["python_threads"] == 1 and result["os_threads_started"] == 0
    assert np.isfinite(result["loss"]) and result["moved"] == result["parameters"] > 180
    assert len(result["predictions"]) == 2 and all(0 < p < 1 for p in result["predictions"])


def _outputs_and_gradients(path, dtype, size, batch):
    """InceptionV3 + the workshop's head with batch norms that act: predict, then one step's
    loss and parameter gradients (the same dropout mask on both paths)."""
    minidl.clear_session()
    minidl.initializers.seed(11)
    base = applications.InceptionV3(weights=None, include_top=False, input_shape=(size, size, 3))
    head = Sequential([GlobalAveragePooling2D(input_shape=base.output_shape[1:]), Dense(16, activation="relu"),
                       Dropout(0.5, seed=3), Dense(1, activation="sigmoid")])
    model = Model(base.input, head(base.output))
    randomize_batch_norms(model, np.random.default_rng(11))
    for parameter in model.weights:
        parameter.value = parameter.value.astype(dtype)
    model.compile(Adam(learning_rate=1e-3), "binary_crossentropy")
    x = np.random.default_rng(12).normal(size=(batch, size, size, 3)).astype(dtype)
    with config.using_kernel_path(path):
        predicted = model.predict_on_batch(x)
        loss, _ = model.compute_gradients(x, (np.arange(batch) % 2).astype(dtype))
    return predicted, loss, {p.name: p.grad for p in model.trainable_weights}


def _relative(got, expected):
    return np.abs(got - expected).max() / np.abs(expected).max()


@pytest.fixture
def engine_everywhere(monkeypatch, config_switches):
    """Winograd for small layers too, and convolutions in many chunks shared between threads."""
    import minidl.kernels.fast.conv as fast_conv
    monkeypatch.setattr(winograd, "_MIN_OUTPUT_SIZE", 1)
    monkeypatch.setattr(winograd, "_MIN_CHANNELS", 1)
    monkeypatch.setattr(fast_conv, "_CHUNK_BYTES", 64 * 1024)
    config_switches(inference_fusion=True, winograd=True)


def test_float64_reference_and_engine_agree_on_inception_outputs_and_every_gradient(engine_everywhere):
    engine = _outputs_and_gradients("numba", np.float64, size=107, batch=3)
    reference = _outputs_and_gradients("reference", np.float64, size=107, batch=3)
    assert engine[0].dtype == reference[0].dtype == np.float64
    assert _relative(engine[0], reference[0]) < 1e-10
    assert abs(engine[1] - reference[1]) < 1e-10 * abs(reference[1])
    assert engine[2].keys() == reference[2].keys() and len(reference[2]) > 180
    for name, gradient in reference[2].items():
        assert np.abs(gradient).max() > 0 and _relative(engine[2][name], gradient) < 1e-10, name


def test_float32_reference_and_engine_agree_on_the_workshop_step(config_switches):
    """At the workshop's size and batch (299x299, 5 images), as the engine runs by default.

    Outputs, loss and the head's gradients agree within 1e-4. The base's gradients cannot be
    held to that in float32 by any implementation: batch norm's backward subtracts nearly
    equal sums, and the reference's own float32 gradients differ from its float64 ones by
    about 1e-2 of their norm; the engine's must stay as close to the reference's.
    """
    config_switches(inference_fusion=True, winograd=True)
    engine = _outputs_and_gradients("numba", np.float32, size=299, batch=5)
    reference = _outputs_and_gradients("reference", np.float32, size=299, batch=5)
    assert engine[0].dtype == reference[0].dtype == np.float32
    assert _relative(engine[0], reference[0]) < 1e-4 and np.ptp(reference[0]) > 1e-6
    assert abs(engine[1] - reference[1]) < 1e-4 * abs(reference[1])
    head = [name for name in reference[2] if name.startswith("dense")]
    assert len(head) == 4
    for name in head:
        assert _relative(engine[2][name], reference[2][name]) < 1e-4, name
    difference = np.sqrt(sum(np.sum((engine[2][n] - g) ** 2) for n, g in reference[2].items()))
    norm = np.sqrt(sum(np.sum(g ** 2) for g in reference[2].values()))
    assert difference < 5e-2 * norm


# ------------------------------------------------------------------ what the learner reads
LEARNER_FILES = sorted([*PACKAGE.glob("layers/*.py"), PACKAGE / "activations.py", PACKAGE / "losses.py",
                        PACKAGE / "optimizers.py", PACKAGE / "models" / "graph.py", PACKAGE / "models" / "model.py"])
ENGINE_WORDS = re.compile(r"numba|winograd|chunk|fus(ed|ion)|epilogue|thread|malloc|blas", re.IGNORECASE)


def test_the_learners_files_name_no_engine_concept():
    assert len(LEARNER_FILES) >= 18
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in LEARNER_FILES for number, line in enumerate(path.read_text().splitlines(), 1)
             if ENGINE_WORDS.search(line)]
    assert found == []


def _private_names_used(source):
    """Every ``x._name`` attribute and every imported ``_name``, dunders excepted."""
    private = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names] + (node.module or "").split(".")
        private += [f"line {node.lineno}: {name}" for name in names
                    if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))]
    return private


def test_the_custom_layer_example_uses_only_public_names():
    assert _private_names_used((ROOT / "examples" / "custom_layer.py").read_text()) == []
    assert sorted(_private_names_used("self._keep(x)\nfrom minidl.layers.base import _recording")) == [
        "line 1: _keep", "line 2: _recording"]          # the check itself sees private names

"""No process-wide change at import; the engine's settings when it first runs, each with an off switch.

Each case runs in a fresh Python process (the settings are once per process):

* ``import minidl`` imports no Numba, starts no thread (of any kind: counted in
  /proc/self/task), leaves OpenBLAS's spin, OMP_WAIT_POLICY and malloc as they were;
* the first operation on the numba path applies both settings of
  ``minidl/kernels/fast/process_settings.py`` (OpenBLAS's running threads restart and
  still compute the same product), keeps what the user set, and each off switch works;
* a whole training step and prediction on the reference path changes nothing either.
"""
import json
import os
import subprocess
import sys

import pytest

from minidl.kernels.fast import process_settings

_PROBE = """
import ctypes, json, os, sys
import numpy as np                      # NumPy first: OpenBLAS is already running
def openblas_spin():                    # found here, not through minidl: importing its engine applies settings
    for line in open("/proc/self/maps"):
        if "openblas" in line.lower() and "/" in line:
            library = ctypes.CDLL(line.split()[-1])
            if hasattr(library, "openblas_thread_timeout"):
                return int(library.openblas_thread_timeout())
def os_threads():
    return len(os.listdir("/proc/self/task"))
def mmapped():                          # bytes malloc holds in mmap'd blocks
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblkhd
def state():
    before = mmapped()
    array = np.ones(16 * 2**20, dtype=np.float32)          # 64 MB: an mmap unless memory is kept
    return {"spin": openblas_spin(),
            "omp": os.environ.get("OMP_WAIT_POLICY"), "threads": os_threads(),
            "large_array_mmapped": mmapped() - before >= 64 * 2**20}
a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096
product = (a @ a.T).tolist()
result = {"before": state()}
import minidl
result["after_import"] = state()
result["numba_imported"] = "numba" in sys.modules
STEP
result["after_step"] = state()
result["numba_after_step"] = "numba" in sys.modules
result["same_product"] = (a @ a.T).tolist() == product
print(json.dumps(result))
"""

_ENGINE_STEP = """
from minidl import kernels
kernels.relu_forward(np.ones(8, np.float32))
"""

_REFERENCE_TRAINING = """
from minidl.layers import Input, Conv2D, BatchNormalization, Activation, GlobalAveragePooling2D, Dense
from minidl.models import Model
x = Input(shape=(8, 8, 3))
y = Dense(1, activation="sigmoid")(GlobalAveragePooling2D()(Activation("relu")(BatchNormalization()(Conv2D(4, 3)(x)))))
model = Model(x, y)
model.compile("adam", "binary_crossentropy", ["accuracy"])
images = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
model.train_on_batch(images, np.array([0, 1, 0, 1]))
model.predict(images)
"""

needs_glibc_openblas = pytest.mark.skipif(
    not sys.platform.startswith("linux") or process_settings._loaded_openblas() is None
    or not hasattr(process_settings._glibc(), "mallinfo2"),
    reason="needs Linux with glibc >= 2.33 and NumPy on OpenBLAS")


def _probe(step, **environment):
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "MINIDL_KERNELS",
                          "MINIDL_HAND_OVER_CORES", "MINIDL_KEEP_FREED_MEMORY")}
    env.update(environment)
    completed = subprocess.run([sys.executable, "-c", _PROBE.replace("STEP", step)], capture_output=True,
                               text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@needs_glibc_openblas
def test_import_changes_nothing_and_the_engine_applies_both_settings_when_it_first_runs():
    result = _probe(_ENGINE_STEP)
    assert result["after_import"] == result["before"]        # spin, OMP policy, thread count, malloc
    assert result["before"]["large_array_mmapped"] is True
    assert result["numba_imported"] is False
    assert result["after_step"]["spin"] == int(process_settings.QUICK_OPENBLAS_TIMEOUT)
    assert result["after_step"]["omp"] == "passive"
    assert result["after_step"]["large_array_mmapped"] is False
    assert result["numba_after_step"] is True
    assert result["same_product"] is True                    # the restarted OpenBLAS still computes


@needs_glibc_openblas
def test_settings_the_user_made_are_kept():
    result = _probe(_ENGINE_STEP, OPENBLAS_THREAD_TIMEOUT="9", OMP_WAIT_POLICY="active")
    assert result["after_step"]["spin"] == 9
    assert result["after_step"]["omp"] == "active"


@needs_glibc_openblas
@pytest.mark.parametrize("switch", ["MINIDL_HAND_OVER_CORES", "MINIDL_KEEP_FREED_MEMORY"])
@pytest.mark.parametrize("off", ["0", "off", "False", "no"])
def test_each_off_switch_keeps_its_setting_off(switch, off):
    result = _probe(_ENGINE_STEP, **{switch: off})
    before, after = result["before"], result["after_step"]
    if switch == "MINIDL_HAND_OVER_CORES":
        assert (after["spin"], after["omp"]) == (before["spin"], before["omp"])
        assert after["large_array_mmapped"] is False          # the other setting still applies
    else:
        assert after["large_array_mmapped"] is True
        assert after["omp"] == "passive"


@needs_glibc_openblas
def test_a_training_step_on_the_reference_path_changes_nothing_and_imports_no_numba():
    result = _probe(_REFERENCE_TRAINING, MINIDL_KERNELS="reference")
    assert result["after_step"] == result["before"]
    assert result["numba_after_step"] is False


def test_a_flag_that_is_neither_on_nor_off_is_an_error_naming_it():
    env = dict(os.environ, MINIDL_KEEP_FREED_MEMORY="maybe")
    completed = subprocess.run([sys.executable, "-c", "from minidl.kernels import fast"], capture_output=True,
                               text=True, env=env, timeout=300)
    assert completed.returncode != 0
    assert "MINIDL_KEEP_FREED_MEMORY" in completed.stderr and "'maybe'" in completed.stderr

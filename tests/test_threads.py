"""minidl.threads: both thread pools are told to hand the cores over quickly, unless the user chose."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minidl import threads

_PROBE = """
import json, os
import numpy as np                      # NumPy first: OpenBLAS is already running
a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096
before = (a @ a.T).tolist()
import minidl
after = (a @ a.T).tolist()              # the restarted OpenBLAS threads still compute
print(json.dumps({"spin": minidl.threads.openblas_spin_setting(),
                  "omp": os.environ.get("OMP_WAIT_POLICY"),
                  "same_product": before == after}))
"""


def _probe(**settings):
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")}
    env.update(settings)
    completed = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                               env=env, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


needs_openblas = pytest.mark.skipif(threads._loaded_openblas() is None,
                                    reason="NumPy is not linked to a loaded OpenBLAS here")


@needs_openblas
def test_running_openblas_gets_the_short_spin_after_numpy_was_imported_first():
    result = _probe()
    assert result["spin"] == int(threads.QUICK_OPENBLAS_TIMEOUT)
    assert result["omp"] == "passive"
    assert result["same_product"] is True


@needs_openblas
def test_settings_the_user_made_are_kept():
    result = _probe(OPENBLAS_THREAD_TIMEOUT="9", OMP_WAIT_POLICY="active")
    assert result["spin"] == 9
    assert result["omp"] == "active"


def test_products_in_this_process_are_unaffected():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 100))
    np.testing.assert_allclose(a @ b, np.einsum("ik,kj->ij", a, b), rtol=1e-10, atol=1e-10)

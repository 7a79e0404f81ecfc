"""Shared test fixtures: both kernel paths, minidl.config's switches, the shared data folder,
fresh layer names."""
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import config

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA_DIR = SHARED / "data" / "Open_I_abd_vs_CXRs"
ORACLE_DIR = SHARED / "oracle"


@pytest.fixture(params=["numba", "reference"])
def kernel_path(request):
    """Run the test once on the Numba kernels and once on the NumPy reference."""
    with config.using_kernel_path(request.param):
        yield request.param


@pytest.fixture
def engine_path():
    """For a test of the Numba engine itself (fusion, the training walk's plan): the engine, even
    when ``MINIDL_KERNELS=reference`` puts the rest of the suite on the reference path."""
    with config.using_kernel_path("numba"):
        yield


@pytest.fixture
def config_switches():
    """Call it as ``config_switches(inference_fusion=True, winograd=False)``: minidl.config's
    switches for this test, each put back as it was after the test."""
    previous = {"inference_fusion": config.inference_fusion(), "winograd": config.winograd()}

    def switch(**settings):
        for name, enabled in settings.items():
            getattr(config, f"set_{name}")(enabled)

    yield switch
    switch(**previous)


@pytest.fixture(autouse=True)
def fresh_names():
    """Fresh layer names and reproducible weights for every test."""
    minidl.clear_session()
    minidl.initializers.seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def data_dir():
    if not DATA_DIR.is_dir():
        pytest.skip(f"workshop data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture
def oracle_dir():
    if not (ORACLE_DIR / "reference_outputs.npz").is_file():
        pytest.skip(f"oracle not found at {ORACLE_DIR}")
    return ORACLE_DIR

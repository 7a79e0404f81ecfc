"""The reader on a real Keras-written file in the official layout (../shared/oracle).

The full InceptionV3 output comparison is in the lead's oracle test; here we
check that the file is read exactly, converts losslessly, and that minidl's
Keras writer reproduces its layout.
"""
from pathlib import Path

import h5py
import numpy as np
import pytest

from minidl.utils.files import md5_of_file
from minidl.weights.convert import convert
from minidl.weights.keras_h5 import read_keras_h5, write_keras_h5
from minidl.weights.minidl_h5 import read_minidl_h5, read_minidl_h5_attributes

ORACLE = Path(__file__).resolve().parents[2] / "shared" / "oracle" / "inception_v3_random_notop.h5"
pytestmark = pytest.mark.skipif(not ORACLE.exists(), reason=f"{ORACLE} not available")


@pytest.fixture(scope="module")
def oracle_layers():
    return read_keras_h5(ORACLE)


def test_oracle_counts(oracle_layers):
    assert len(oracle_layers) == 311
    weighted = [layer for layer in oracle_layers if layer.weights]
    assert len(weighted) == 188
    assert sum(len(layer.weights) for layer in weighted) == 376
    assert sum(array.size for layer in weighted for array in layer.arrays) == 21_802_784
    assert all(array.dtype == np.float32 for layer in weighted for array in layer.arrays)


def test_oracle_first_weighted_layers(oracle_layers):
    weighted = [layer for layer in oracle_layers if layer.weights]
    assert weighted[0].name == "conv2d_1"
    assert weighted[0].weight_names == ["conv2d_1/kernel:0"]
    assert weighted[0].arrays[0].shape == (3, 3, 3, 32)
    assert weighted[1].name == "batch_normalization_1"
    assert weighted[1].weight_names == [
        "batch_normalization_1/beta:0",
        "batch_normalization_1/moving_mean:0",
        "batch_normalization_1/moving_variance:0",
    ]
    assert [a.shape for a in weighted[1].arrays] == [(32,), (32,), (32,)]
    # minidl/keras_semantics.md §4.6: moving_variance is positive; the last weighted layer is B94
    assert (weighted[1].arrays[2] > 0).all()
    assert weighted[-1].name == "batch_normalization_94"
    with h5py.File(ORACLE, "r") as f:  # values come from the nested dataset paths
        np.testing.assert_array_equal(weighted[0].arrays[0], f["conv2d_1/conv2d_1/kernel:0"][()])


def test_oracle_converts_losslessly(tmp_path, oracle_layers):
    destination = tmp_path / "oracle.minidl.h5"
    result = convert(ORACLE, destination)
    assert (result.weighted_layers, result.arrays, result.numbers) == (188, 376, 21_802_784)
    converted = read_minidl_h5(destination)
    assert [layer.name for layer in converted] == [layer.name for layer in oracle_layers]
    for original, back in zip(oracle_layers, converted):
        assert len(original.arrays) == len(back.arrays)
        for a, b in zip(original.arrays, back.arrays):
            np.testing.assert_array_equal(a, b)
    assert converted[2].weight_names == ["beta", "moving_mean", "moving_variance"]
    assert read_minidl_h5_attributes(destination)["source_md5"] == md5_of_file(ORACLE)


def test_keras_writer_reproduces_the_oracle_layout(tmp_path, oracle_layers):
    written = write_keras_h5(tmp_path / "rewritten.h5", oracle_layers, keras_version="2.0.8")

    def structure(path):
        with h5py.File(path, "r") as f:
            names = [n.decode() for n in f.attrs["layer_names"]]
            per_layer = []
            for name in names:
                weight_names = f[name].attrs["weight_names"]
                per_layer.append((name, weight_names.dtype.kind, [
                    (n.decode(), f[name][n.decode()].shape, f[name][n.decode()].dtype.str)
                    for n in weight_names
                ]))
            return names, per_layer

    assert structure(written) == structure(ORACLE)
    again = read_keras_h5(written)
    for original, back in zip(oracle_layers[:20], again[:20]):
        for a, b in zip(original.arrays, back.arrays):
            np.testing.assert_array_equal(a, b)


def test_oracle_fits_minidl_inception_v3_shapes(tmp_path):
    from minidl import applications
    from minidl.models.saving import model_layout

    model = applications.InceptionV3(weights=None, include_top=False)
    result = convert(ORACLE, tmp_path / "checked.h5", architecture=model_layout(model))
    assert result.architecture_checked
    weighted_model = [layer.name for layer in model.layers if layer.weights]
    weighted_file = [layer.name for layer in read_keras_h5(ORACLE) if layer.weights]
    assert weighted_model == weighted_file  # Keras 2 names, Keras's model.layers order

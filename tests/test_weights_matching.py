"""match_layers on plain data: which file arrays go into which model layer (minidl/keras_semantics.md §7.2-7.3).

No model here: both sides are lists of LayerWeights, as minidl/models/saving.py builds them.
"""
import numpy as np
import pytest

from minidl.weights.keras_h5 import LayerWeights
from minidl.weights.matching import match_layers


def layer(name, *shapes, fill=0.0):
    return LayerWeights(name, [(f"{name}/w{i}:0", np.full(shape, fill, np.float32))
                               for i, shape in enumerate(shapes)])


MODEL = [layer("input_1"), layer("conv_a", (3, 3, 1, 2)), layer("relu"), layer("dense_a", (8, 1), (1,))]


def test_by_order_pairs_weighted_layers_and_ignores_names_and_weightless_layers():
    file_layers = [layer("input"), layer("c", (3, 3, 1, 2), fill=1), layer("d", (8, 1), (1,), fill=2)]
    matches = match_layers(MODEL, file_layers)
    assert [position for position, _ in matches] == [1, 3]
    assert [array[0, 0, 0, 0] for array in matches[0][1]] == [1]
    assert [float(array.ravel()[0]) for array in matches[1][1]] == [2, 2]


def test_by_order_refuses_a_different_count_or_shape_naming_the_source():
    with pytest.raises(ValueError, match="containing 1 layers into a model with 2 layers.*'w.h5'"):
        match_layers(MODEL, [layer("c", (3, 3, 1, 2))], source="w.h5")
    wrong = [layer("c", (3, 3, 1, 2)), layer("d", (8, 2), (2,))]
    with pytest.raises(ValueError, match=r"weighted layer #1: shape mismatch: model layer 'dense_a' "
                                         r"weight 'dense_a/w0:0' has shape \(8, 1\).*'d' of 'w.h5'.*\(8, 2\)"):
        match_layers(MODEL, wrong, source="w.h5")


def test_by_name_fills_every_layer_of_that_name_and_skips_on_request():
    model = MODEL + [layer("dense_a", (8, 1), (1,))]  # two layers named dense_a
    file_layers = [layer("dense_a", (8, 1), (1,), fill=5), layer("unknown", (2,)), layer("conv_a", (1,))]
    with pytest.raises(ValueError, match="conv_a.*skip_mismatch=True"):
        match_layers(model, file_layers, by_name=True)
    with pytest.warns(UserWarning, match="Skipping loading of weights for layer 'conv_a'"):
        matches = match_layers(model, file_layers, by_name=True, skip_mismatch=True)
    assert [position for position, _ in matches] == [3, 4]


def test_skip_mismatch_needs_by_name():
    with pytest.raises(ValueError, match="only makes sense with by_name=True"):
        match_layers(MODEL, [], skip_mismatch=True)

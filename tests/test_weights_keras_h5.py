"""Keras legacy HDF5 layout (minidl/keras_semantics.md §7.1): reading files other writers made, and writing our own.

The files read here are built directly with h5py, not with minidl's writer, so
the reader is tested against the layout itself.
"""
import shutil

import h5py
import numpy as np
import pytest

from minidl.weights.keras_h5 import (
    HDF5_OBJECT_HEADER_LIMIT,
    LayerWeights,
    WeightsFileError,
    load_attribute_list,
    read_keras_h5,
    read_keras_h5_attributes,
    save_attribute_list,
    write_keras_h5,
)

RNG = np.random.default_rng(0)


def write_keras2_file(path, root=None):
    """A Keras 2 style file: byte names, ':0' suffixes, an empty float64
    weight_names for the weightless input layer."""
    kernel = RNG.standard_normal((3, 3, 2, 4)).astype(np.float32)
    beta = RNG.standard_normal(4).astype(np.float32)
    mean = RNG.standard_normal(4).astype(np.float32)
    with h5py.File(path, "w") as f:
        group = f if root is None else f.create_group(root)
        group.attrs["layer_names"] = np.array([b"input_1", b"conv2d_1", b"batch_normalization_1"])
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.2.4"
        group.create_group("input_1").attrs["weight_names"] = np.asarray([])
        conv = group.create_group("conv2d_1")
        conv.attrs["weight_names"] = np.array([b"conv2d_1/kernel:0"])
        conv["conv2d_1/kernel:0"] = kernel
        bn = group.create_group("batch_normalization_1")
        bn.attrs["weight_names"] = np.array(
            [b"batch_normalization_1/beta:0", b"batch_normalization_1/moving_mean:0"]
        )
        bn["batch_normalization_1/beta:0"] = beta
        bn["batch_normalization_1/moving_mean:0"] = mean
    return kernel, beta, mean


def test_reads_keras2_layout_in_order_with_nested_dataset_paths(tmp_path):
    path = tmp_path / "k2.h5"
    kernel, beta, mean = write_keras2_file(path)
    layers = read_keras_h5(path)
    assert [layer.name for layer in layers] == ["input_1", "conv2d_1", "batch_normalization_1"]
    assert layers[0].weights == []
    assert layers[1].weight_names == ["conv2d_1/kernel:0"]
    np.testing.assert_array_equal(layers[1].arrays[0], kernel)
    assert layers[2].weight_names == ["batch_normalization_1/beta:0", "batch_normalization_1/moving_mean:0"]
    np.testing.assert_array_equal(layers[2].arrays[0], beta)
    np.testing.assert_array_equal(layers[2].arrays[1], mean)
    assert read_keras_h5_attributes(path) == {"backend": "tensorflow", "keras_version": "2.2.4"}


def test_descends_into_model_weights_of_a_full_model_file(tmp_path):
    path = tmp_path / "full_model.h5"
    kernel, _, _ = write_keras2_file(path, root="model_weights")
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = '{"class_name": "Model"}'
    layers = read_keras_h5(path)
    assert [layer.name for layer in layers] == ["input_1", "conv2d_1", "batch_normalization_1"]
    np.testing.assert_array_equal(layers[1].arrays[0], kernel)


def test_reads_str_names_and_keras3_style_weight_names(tmp_path):
    """Keras 3 / tf.keras writers: variable-length str attributes, names
    without ':0', weight names such as 'kernel' and 'vars/0'."""
    path = tmp_path / "k3.h5"
    kernel = RNG.standard_normal((5, 2)).astype(np.float32)
    bias = RNG.standard_normal(2).astype(np.float32)
    string = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array(["dense", "dropout"], dtype=string)
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "3.5.0"
        dense = f.create_group("dense")
        dense.attrs["weight_names"] = np.array(["kernel", "vars/0"], dtype=string)
        dense["kernel"] = kernel
        dense["vars/0"] = bias
        f.create_group("dropout").attrs["weight_names"] = np.array([], dtype=string)
    layers = read_keras_h5(path)
    assert [(layer.name, layer.weight_names) for layer in layers] == [
        ("dense", ["kernel", "vars/0"]), ("dropout", [])
    ]
    np.testing.assert_array_equal(layers[0].arrays[1], bias)


def test_split_attributes_are_written_in_chunks_and_joined_on_read(tmp_path):
    names = [f"layer_with_a_rather_long_name_{index:05d}" * 3 for index in range(2000)]
    assert np.asarray([n.encode() for n in names]).nbytes > HDF5_OBJECT_HEADER_LIMIT
    with h5py.File(tmp_path / "a.h5", "w") as f:
        save_attribute_list(f, "layer_names", names)
        assert "layer_names" not in f.attrs
        chunk_names = sorted(key for key in f.attrs if key.startswith("layer_names"))
        assert len(chunk_names) >= 2 and "layer_names0" in chunk_names
        for key in chunk_names:
            assert f.attrs[key].nbytes <= HDF5_OBJECT_HEADER_LIMIT
        assert load_attribute_list(f, "layer_names") == names


def test_reads_split_attributes_written_by_hand(tmp_path):
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.attrs["weight_names0"] = np.array([b"a/kernel:0", b"a/bias:0"])
        f.attrs["weight_names1"] = np.array([b"a/extra:0"])
        assert load_attribute_list(f, "weight_names") == ["a/kernel:0", "a/bias:0", "a/extra:0"]
        assert load_attribute_list(f, "absent") == []


def test_written_file_has_the_keras_layout(tmp_path):
    kernel = RNG.standard_normal((3, 3, 1, 2)).astype(np.float32)
    bias = np.float32([0.5, -0.5])
    path = write_keras_h5(tmp_path / "out.h5", [
        ("input_1", []),
        ("conv2d_1", [("conv2d_1/kernel:0", kernel), ("conv2d_1/bias:0", bias)]),
        ("flatten_1", []),
    ])
    with h5py.File(path, "r") as f:
        assert list(f.attrs["layer_names"]) == [b"input_1", b"conv2d_1", b"flatten_1"]
        assert f.attrs["layer_names"].dtype.kind == "S"
        # h5py hands scalar byte attributes back as str; Keras accepts either
        assert f.attrs["backend"] in ("tensorflow", b"tensorflow")
        assert f.attrs["keras_version"] in ("2.3.1", b"2.3.1")
        empty = f["input_1"].attrs["weight_names"]
        assert empty.shape == (0,) and empty.dtype == np.float64  # as Keras writes it
        assert list(f["conv2d_1"].attrs["weight_names"]) == [b"conv2d_1/kernel:0", b"conv2d_1/bias:0"]
        np.testing.assert_array_equal(f["conv2d_1"]["conv2d_1"]["kernel:0"][()], kernel)
        np.testing.assert_array_equal(f["conv2d_1/conv2d_1/bias:0"][()], bias)
    layers = read_keras_h5(path)
    assert layers[1] == LayerWeights("conv2d_1", layers[1].weights)
    np.testing.assert_array_equal(layers[1].arrays[0], kernel)
    assert layers[1].arrays[0].dtype == np.float32


def test_writer_splits_a_long_layer_names_attribute(tmp_path):
    layers = [(f"layer_{i:04d}_" + "long_name_" * 11, []) for i in range(600)]  # ~72 KB of names
    path = write_keras_h5(tmp_path / "many.h5", layers)
    with h5py.File(path, "r") as f:
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs
    assert [layer.name for layer in read_keras_h5(path)] == [name for name, _ in layers]


def test_writer_rejects_repeated_names(tmp_path):
    with pytest.raises(ValueError, match="repeated"):
        write_keras_h5(tmp_path / "x.h5", [("dense_1", []), ("dense_1", [])])
    assert not (tmp_path / "x.h5").exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_missing_dataset_is_reported_with_file_and_layer(tmp_path):
    path = tmp_path / "broken.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"dense_1"])
        f.create_group("dense_1").attrs["weight_names"] = np.array([b"dense_1/kernel:0"])
    with pytest.raises(WeightsFileError, match=r"broken\.h5.*dense_1.*kernel:0"):
        read_keras_h5(path)


def test_text_file_and_truncated_file_give_errors_naming_the_file(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n" * 10)
    with pytest.raises(WeightsFileError, match="notes.h5") as info:
        read_keras_h5(text)
    assert "HDF5" in str(info.value)

    good = tmp_path / "good.h5"
    write_keras2_file(good)
    truncated = tmp_path / "truncated.h5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFileError, match="truncated.h5"):
        read_keras_h5(truncated)

    with pytest.raises(FileNotFoundError, match="absent.h5"):
        read_keras_h5(tmp_path / "absent.h5")


def test_hdf5_file_without_keras_layout_is_rejected(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(WeightsFileError, match="other.h5.*layer_names"):
        read_keras_h5(path)


def test_copy_of_written_file_reads_identically(tmp_path):
    arrays = [RNG.standard_normal((4,)).astype(np.float64), np.array(3.5)]
    path = write_keras_h5(tmp_path / "s.h5", [("custom", [("custom/w:0", arrays[0]), ("custom/scalar:0", arrays[1])])])
    shutil.copy(path, tmp_path / "copy.h5")
    layer = read_keras_h5(tmp_path / "copy.h5")[0]
    np.testing.assert_array_equal(layer.arrays[0], arrays[0])
    assert layer.arrays[1].shape == () and float(layer.arrays[1]) == 3.5

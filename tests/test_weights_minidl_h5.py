"""minidl's own weights format, format detection, atomic_write and md5_of_file."""
import hashlib
import os

import h5py
import numpy as np
import pytest

import minidl
from minidl.utils.files import atomic_write, md5_of_file
from minidl.weights import minidl_h5
from minidl.weights.keras_h5 import LayerWeights, WeightsFileError, write_keras_h5
from minidl.weights.minidl_h5 import (
    read_minidl_h5,
    read_minidl_h5_attributes,
    short_weight_names,
    write_minidl_h5,
)
from minidl.weights.reading import detect_format, read_weights_file

RNG = np.random.default_rng(1)


def sample_layers():
    return [
        LayerWeights("input_1", []),
        LayerWeights("conv2d_1", [("kernel", RNG.standard_normal((3, 3, 3, 8)).astype(np.float32))]),
        LayerWeights("batch_normalization_1", [
            ("beta", RNG.standard_normal(8).astype(np.float32)),
            ("moving_mean", RNG.standard_normal(8).astype(np.float32)),
            ("moving_variance", RNG.random(8).astype(np.float32) + 0.5),
        ]),
        LayerWeights("sequential_1", [
            ("dense_1/kernel", RNG.standard_normal((8, 2))),
            ("dense_1/bias", RNG.standard_normal(2)),
        ]),
    ]


def test_round_trip_keeps_order_names_values_and_dtypes(tmp_path):
    layers = sample_layers()
    path = write_minidl_h5(tmp_path / "w.h5", layers, source_md5="0" * 32, source_file="src.h5")
    loaded = read_minidl_h5(path)
    assert [layer.name for layer in loaded] == [layer.name for layer in layers]
    for original, back in zip(layers, loaded):
        assert back.weight_names == original.weight_names
        for a, b in zip(original.arrays, back.arrays):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_layout_is_the_documented_one(tmp_path):
    architecture = {"class_name": "Model", "config": {"layers": ["x" * 100] * 2000}}  # > 64 KiB
    path = write_minidl_h5(tmp_path / "w.h5", sample_layers(), architecture=architecture,
                           source_md5="ab" * 16, source_file="keras.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "minidl-weights"
        assert f.attrs["format_version"] == 1
        assert f.attrs["minidl_version"] == minidl.__version__  # read without importing minidl
        assert list(f.attrs["layer_names"]) == ["input_1", "conv2d_1", "batch_normalization_1", "sequential_1"]
        assert list(f["weights/batch_normalization_1"].attrs["weight_names"]) == ["beta", "moving_mean", "moving_variance"]
        assert f["weights/conv2d_1/kernel"].shape == (3, 3, 3, 8)
        assert f["weights/sequential_1/dense_1/bias"].shape == (2,)
        assert len(f["weights/input_1"].attrs["weight_names"]) == 0
    attributes = read_minidl_h5_attributes(path)
    assert attributes["source_md5"] == "ab" * 16 and attributes["source_file"] == "keras.h5"
    assert attributes["architecture"] == architecture


def test_short_weight_names():
    assert short_weight_names("conv2d_1", ["conv2d_1/kernel:0"]) == ["kernel"]
    assert short_weight_names("sequential_1", ["dense_1/kernel:0", "dense_1/bias:0"]) == ["dense_1/kernel", "dense_1/bias"]
    assert short_weight_names("dense", ["kernel", "vars/0"]) == ["kernel", "vars/0"]
    # collisions after shortening keep the full names
    assert short_weight_names("x", ["x/w:0", "x/w:1"]) == ["x/w:0", "x/w:1"]


def test_detection_of_both_formats_and_of_unknown_files(tmp_path):
    minidl_path = write_minidl_h5(tmp_path / "m.h5", sample_layers())
    keras_path = write_keras_h5(tmp_path / "k.h5", [("dense_1", [("dense_1/kernel:0", np.ones((2, 2)))])])
    assert detect_format(minidl_path) == "minidl"
    assert detect_format(keras_path) == "keras"
    file_format, layers = read_weights_file(keras_path)
    assert file_format == "keras" and layers[0].weight_names == ["dense_1/kernel:0"]

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_group("layers")
    with pytest.raises(WeightsFileError, match=r"other\.h5.*minidl-weights.*layer_names.*Keras 3"):
        detect_format(other)


def test_non_hdf5_and_truncated_files_give_errors_naming_the_file(tmp_path):
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    with pytest.raises(WeightsFileError, match="readme.txt"):
        read_weights_file(text)
    good = write_minidl_h5(tmp_path / "good.h5", sample_layers())
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(WeightsFileError, match="cut.h5"):
        read_weights_file(truncated)
    with pytest.raises(WeightsFileError, match="cut.h5"):
        read_minidl_h5(truncated)


def test_newer_format_version_is_refused(tmp_path):
    path = write_minidl_h5(tmp_path / "w.h5", sample_layers())
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(WeightsFileError, match="version 99"):
        read_minidl_h5(path)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "w.h5"
    write_minidl_h5(target, sample_layers()[:2])
    before = target.read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write

    monkeypatch.setattr(minidl_h5, "write_minidl_group", explode)
    with pytest.raises(KeyboardInterrupt):
        write_minidl_h5(target, sample_layers())
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5"]


# --- atomic_write and md5_of_file --------------------------------------------
def test_atomic_write_success_replaces_and_uses_same_folder(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as temp_path:
        assert temp_path.parent == tmp_path and temp_path != target
        temp_path.write_bytes(b"new content")
        assert target.read_bytes() == b"old"  # not visible until the end
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)


@pytest.mark.parametrize("exception", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_atomic_write_failure_removes_temporary_and_leaves_no_target(tmp_path, exception):
    target = tmp_path / "out.bin"
    with pytest.raises(type(exception)):
        with atomic_write(target) as temp_path:
            temp_path.write_bytes(b"partial")
            raise exception
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_into_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        with atomic_write(tmp_path / "nowhere" / "x.h5"):
            pass


def test_md5_of_file_matches_hashlib_across_chunks(tmp_path):
    data = RNG.integers(0, 256, 3 * 1024 + 17, dtype=np.uint8).tobytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert md5_of_file(path, chunk_size=1024) == hashlib.md5(data).hexdigest()
    assert md5_of_file(path) == hashlib.md5(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert md5_of_file(tmp_path / "empty") == "d41d8cd98f00b204e9800998ecf8427e"

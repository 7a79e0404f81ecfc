"""load_img / img_to_array / array_to_img / save_img: minidl/keras_semantics.md §3."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minidl.preprocessing.image import (UnreadableImageError, array_to_img, img_to_array,
                                        load_img, save_img)

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data" / "Open_I_abd_vs_CXRs"


def pillow_nearest_indices(size_in, size_out):
    """minidl/keras_semantics.md §3.1: x0 = s/2, x_{i+1} = x_i + s (double), index = int(x_i)."""
    scale = size_in / size_out
    position = scale / 2
    indices = []
    for _ in range(size_out):
        indices.append(int(position))
        position += scale
    return indices


def _index_image(path, width, height):
    """Pixel (r, c) stores c as red + 256 * blue and r in green (sources are traceable)."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[..., 0] = (np.arange(width) % 256)[None, :]
    array[..., 2] = (np.arange(width) // 256)[None, :]
    array[..., 1] = np.arange(height)[:, None] % 256
    Image.fromarray(array).save(path)


@pytest.mark.parametrize("size_in,size_out", [(10, 25), (512, 299), (189, 299), (7, 3), (623, 299)])
def test_nearest_resize_index_rule(tmp_path, size_in, size_out):
    path = tmp_path / "grid.png"
    _index_image(path, size_in, min(size_in, 200))
    x = img_to_array(load_img(path, target_size=(min(size_in, 200), size_out)))
    columns = x[0, :, 0].astype(int) + 256 * x[0, :, 2].astype(int)
    assert list(columns) == pillow_nearest_indices(size_in, size_out)


def test_ten_to_twenty_five_differs_from_floor_formula():
    indices = pillow_nearest_indices(10, 25)
    floor_formula = [int(np.floor((i + 0.5) * 10 / 25)) for i in range(25)]
    assert indices[7] != floor_formula[7]


def test_default_is_nearest_and_other_filters_accepted(tmp_path):
    path = tmp_path / "grid.png"
    _index_image(path, 40, 30)
    nearest = img_to_array(load_img(path, target_size=(12, 17)))
    assert set(np.unique(nearest[..., 0])) <= set(range(40))  # only copied source values
    for method in ("bilinear", "bicubic", "lanczos", "box", "hamming"):
        resized = load_img(path, target_size=(12, 17), interpolation=method)
        assert resized.size == (17, 12)
    with pytest.raises(ValueError, match="interpolation"):
        load_img(path, target_size=(12, 17), interpolation="cubic-spline")


@pytest.mark.parametrize("target_size", [(0, 5), (5,), (5.0, 5), "299", (-1, 3), (3, 4, 5), (True, 4)])
def test_invalid_target_size(tmp_path, target_size):
    path = tmp_path / "grid.png"
    _index_image(path, 4, 4)
    with pytest.raises(ValueError, match="target_size"):
        load_img(path, target_size=target_size)


def test_colour_conversions(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "l.png")
    x = img_to_array(load_img(tmp_path / "l.png"))
    assert x.shape == (3, 4, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.repeat(gray[..., None], 3, axis=2))
    assert img_to_array(load_img(tmp_path / "l.png", color_mode="grayscale")).shape == (3, 4, 1)

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10  # nearly transparent red: alpha is dropped, not composited
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(img_to_array(load_img(tmp_path / "rgba.png"))[0, 0], [200, 0, 0])
    assert img_to_array(load_img(tmp_path / "rgba.png", color_mode="rgba")).shape == (2, 2, 4)

    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(img_to_array(load_img(tmp_path / "p.png"))[0],
                                  [[10, 20, 30], [40, 50, 60]])

    Image.fromarray(np.full((2, 2, 3), [255, 0, 0], np.uint8)).save(tmp_path / "red.png")
    with pytest.warns(UserWarning, match="deprecated"):
        red_as_gray = load_img(tmp_path / "red.png", grayscale=True)
    assert img_to_array(red_as_gray)[0, 0, 0] == 76  # ITU-R 601-2
    with pytest.raises(ValueError, match="color_mode"):
        load_img(tmp_path / "red.png", color_mode="hsv")


def test_sixteen_bit_clip_like_keras_and_minidl_rescale(tmp_path):
    values = np.array([[0, 256, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode.startswith("I")
    clipped = img_to_array(load_img(tmp_path / "16.png"))
    np.testing.assert_array_equal(clipped[0, :, 0], [0, 255, 255, 255])
    kept = img_to_array(load_img(tmp_path / "16.png", color_mode="grayscale"))
    np.testing.assert_array_equal(kept[0, :, 0], [0, 256, 1000, 65535])  # grayscale stays 16-bit
    rescaled = img_to_array(load_img(tmp_path / "16.png", sixteen_bit="rescale"))
    np.testing.assert_array_equal(rescaled[0, :, 1], np.round(values[0] / 257.0))
    stretched = img_to_array(load_img(tmp_path / "16.png", sixteen_bit="minmax"))
    np.testing.assert_array_equal(stretched[0, :, 2], np.round(values[0] * 255.0 / 65535))
    with pytest.raises(ValueError, match="sixteen_bit"):
        load_img(tmp_path / "16.png", sixteen_bit="scale")


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    bad = tmp_path / "not really (1).png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(UnreadableImageError, match=r"not really \(1\)\.png"):
        load_img(bad)
    good = tmp_path / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(UnreadableImageError, match="truncated.png"):
        load_img(truncated)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_img(tmp_path / "missing.png")


def test_array_to_img_and_save_img_roundtrip(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3) * 10
    img = array_to_img(x, scale=False)
    assert img.mode == "RGB"
    np.testing.assert_array_equal(img_to_array(img), x)
    scaled = img_to_array(array_to_img(x))  # scale=True: divide by max, times 255
    np.testing.assert_array_equal(scaled, (x / x.max() * 255).astype(np.uint8))
    assert array_to_img(np.zeros((3, 3, 1))).mode == "L"
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((3, 3)))
    save_img(tmp_path / "out.png", x, scale=False)
    np.testing.assert_array_equal(img_to_array(load_img(tmp_path / "out.png")), x)
    assert img_to_array(img, data_format="channels_first").shape == (3, 2, 4)


@pytest.mark.skipif(not DATA.exists(), reason="../shared workshop data not available")
def test_real_val_file_with_parentheses_loads():
    files = sorted((DATA / "VAL").rglob("*(1)*"))
    assert files, "the VAL folder should hold a '... (1).png' file"
    x = img_to_array(load_img(files[0], target_size=(299, 299)))
    assert x.shape == (299, 299, 3) and 0 <= x.min() and x.max() <= 255

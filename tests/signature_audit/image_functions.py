"""Checks of load_img, img_to_array, array_to_img, save_img, the affine helpers, prefetch."""
import re

import numpy as np
import pytest
from PIL import Image

from minidl.preprocessing import image
from signature_audit import Batches, PICTURES, RNG, X, check, endless_batches, not_implemented, write_png


@check("load_img", "path")
def _(t):
    path = write_png(t.tmp_path / "x.png")
    np.testing.assert_array_equal(np.asarray(image.load_img(path)), np.asarray(Image.open(path)))


@check("load_img", "grayscale", "color_mode")
def _(t):
    path = write_png(t.tmp_path / "x.png")
    assert image.load_img(path, color_mode="grayscale").mode == "L"
    assert image.load_img(path, color_mode="rgba").mode == "RGBA"
    with pytest.warns(UserWarning, match="grayscale is deprecated"):
        assert image.load_img(path, grayscale=True).mode == "L"


@check("load_img", "target_size", "interpolation")
def _(t):
    path = write_png(t.tmp_path / "x.png", size=(8, 8))
    nearest = np.asarray(image.load_img(path, target_size=(3, 5)))
    assert nearest.shape == (3, 5, 3)
    assert not np.array_equal(nearest, np.asarray(image.load_img(path, target_size=(3, 5), interpolation="bicubic")))


@check("load_img", "sixteen_bit")
def _(t):
    path = t.tmp_path / "x.png"
    Image.fromarray(np.array([[0, 1000], [2000, 4000]], np.uint16)).save(path)
    assert np.asarray(image.load_img(path, color_mode="grayscale", sixteen_bit="minmax")).tolist() == \
        [[0, 64], [128, 255]]


@check("img_to_array", "img", "data_format", "dtype")
def _(t):
    img = Image.fromarray(np.arange(24, dtype="uint8").reshape(2, 4, 3))
    array = image.img_to_array(img, data_format="channels_first", dtype="float64")
    assert array.shape == (3, 2, 4) and array.dtype == np.float64 and array[2, 1, 3] == 23
    assert image.img_to_array(img, data_format=None, dtype=None).dtype == np.float32    # Keras 2's defaults


@check("array_to_img", "x", "data_format", "scale", "dtype")
def _(t):
    x = np.arange(12, dtype="float32").reshape(1, 2, 6)                  # channels first, one channel
    assert np.asarray(image.array_to_img(x, data_format="channels_first", scale=False)).tolist() == \
        [list(range(6)), list(range(6, 12))]
    assert np.asarray(image.array_to_img(x, data_format="channels_first")).max() == 255   # scaled
    assert np.asarray(image.array_to_img(np.full((2, 2, 1), 3.7), scale=False, dtype="float64")).max() == 3
    assert image.array_to_img(np.zeros((2, 2, 3)), data_format=None, dtype=None).mode == "RGB"


@check("save_img", "path", "x", "data_format", "file_format", "scale", "**kwargs")
def _(t):
    x = np.full((3, 4, 5), 100.0, "float32")                              # channels first
    image.save_img(t.tmp_path / "x.img", x, data_format="channels_first", file_format="png", scale=False,
                   compress_level=0)
    saved = Image.open(t.tmp_path / "x.img")
    assert saved.format == "PNG" and saved.size == (5, 4) and np.asarray(saved).max() == 100


@check("apply_affine_transform", "x", "theta", "tx", "ty", "shear", "zx", "zy", "fill_mode", "cval")
def _(t):
    x = np.arange(36, dtype="float64").reshape(6, 6, 1)
    np.testing.assert_allclose(image.apply_affine_transform(x, theta=360), x, atol=1e-9)
    np.testing.assert_array_equal(image.apply_affine_transform(x, tx=1, ty=2, fill_mode="constant", cval=-1)[:5, :4],
                                  x[1:, 2:])
    assert image.apply_affine_transform(x, tx=1, fill_mode="constant", cval=-1)[5, 0, 0] == -1
    for factors in ({"theta": 90}, {"shear": 30}, {"zx": 2}, {"zy": 0.5}):
        assert not np.array_equal(image.apply_affine_transform(x, **factors), x), factors


@check("apply_affine_transform", "row_axis", "col_axis", "channel_axis")
def _(t):
    x = RNG.normal(size=(6, 5, 2))
    channels_first = np.moveaxis(x, -1, 0)
    moved = image.apply_affine_transform(channels_first, tx=1, row_axis=1, col_axis=2, channel_axis=0)
    np.testing.assert_allclose(moved, np.moveaxis(image.apply_affine_transform(x, tx=1), -1, 0))


@check("apply_affine_transform", "order")
def _(t):
    with not_implemented("apply_affine_transform", "order", 0):
        image.apply_affine_transform(PICTURES[0], theta=10, order=0)


@check("apply_brightness_shift", "x", "brightness")
def _(t):
    x = np.full((2, 2, 3), 200.0)
    x[0, 0] = 255.0
    assert image.apply_brightness_shift(x, 0.5)[1, 1, 0] == 100              # PIL's enhance, after scaling


@check("apply_channel_shift", "x", "intensity", "channel_axis")
def _(t):
    x = np.stack([np.zeros((2, 2)), np.full((2, 2), 10.0)])                  # (C, H, W)
    np.testing.assert_array_equal(image.apply_channel_shift(x, 4.0, channel_axis=0)[0], 4.0)
    np.testing.assert_array_equal(image.apply_channel_shift(x, 4.0, channel_axis=0)[1], 10.0)   # clipped to max


@check("flip_axis", "x", "axis")
def _(t):
    np.testing.assert_array_equal(image.flip_axis(PICTURES[0], 1), PICTURES[0][:, ::-1])


@check("transform_matrix_offset_center", "matrix", "x", "y")
def _(t):
    centred = image.transform_matrix_offset_center(np.diag([2.0, 2.0, 1.0]), 4, 6)
    np.testing.assert_allclose(centred[:2, 2], [-2.5, -3.5])                # c - 2c, c = (x/2 + 0.5, y/2 + 0.5)


@check("prefetch", "source", "max_queue_size", "workers")
def _(t):
    batches = Batches()
    with image.prefetch(batches, max_queue_size=1, workers=2, passes=1) as stream:
        assert stream._queue.maxsize == 1
        received = [next(stream) for _ in range(len(batches))]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in received]), X)
    assert {thread for _, thread in batches.reads} - {"minidl-prefetch-producer"} <= \
        {f"minidl-prefetch_{i}" for i in range(2)}


@check("prefetch", "shuffle", "passes")
def _(t):
    import random
    random.seed(0)
    batches = Batches(batch_size=1)
    with image.prefetch(batches, shuffle=True, passes=2) as stream:
        delivered = [next(stream) for _ in range(16)]
        with pytest.raises(StopIteration):
            next(stream)
    order = [i for i, _ in batches.reads]
    assert sorted(order[:8]) == list(range(8)) != order[:8] and len(delivered) == 16
    for argument in ({"shuffle": True}, {"passes": 1}):            # a generator is read once, as it comes
        with pytest.raises(ValueError, match=re.escape(f"prefetch({next(iter(argument))}=")):
            image.prefetch(endless_batches(), **argument)


@check("prefetch", "use_multiprocessing")
def _(t):
    with not_implemented("prefetch", "use_multiprocessing", True):
        image.prefetch(Batches(), use_multiprocessing=True).close()

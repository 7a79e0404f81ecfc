"""Checks of ImageDataGenerator, its flows and the iterators."""
import re

import numpy as np
import pytest
from PIL import Image

from minidl.preprocessing import image
from minidl.preprocessing.image import DirectoryIterator, ImageDataGenerator, Iterator, NumpyArrayIterator
from signature_audit import PICTURES, check, image_tree, not_implemented, write_png


def transform_of(**settings):
    """The random parameters ImageDataGenerator(**settings) draws for one 6x6 image (seeded)."""
    return ImageDataGenerator(**settings).get_random_transform((6, 6, 3), seed=1)


@check("ImageDataGenerator", "featurewise_center", "featurewise_std_normalization")
def _(t):
    generator = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True)
    generator.fit(PICTURES)
    batch = generator.standardize(PICTURES.copy())
    np.testing.assert_allclose(batch.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(batch.std(axis=(0, 1, 2)), 1.0, rtol=1e-3)


@check("ImageDataGenerator", "samplewise_center", "samplewise_std_normalization")
def _(t):
    generator = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True)
    one = generator.standardize(PICTURES[0].copy())
    assert abs(one.mean()) < 1e-4 and one.std() == pytest.approx(1.0, rel=1e-4)


@check("ImageDataGenerator", "zca_whitening", "zca_epsilon")
def _(t):
    images = (np.random.default_rng(1).normal(size=(200, 2, 2, 1)) * [[[1.0], [2.0]], [[3.0], [4.0]]]).astype("float32")
    generator = ImageDataGenerator(zca_whitening=True)
    generator.fit(images)
    white = generator.standardize(images.copy()).reshape(200, 4)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(4), atol=0.03)
    damped = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e4)
    damped.fit(images)
    assert np.abs(damped.standardize(images.copy())).max() < 0.1 * np.abs(white).max()


@check("ImageDataGenerator", "rotation_range")
def _(t):
    theta = transform_of(rotation_range=30)["theta"]
    assert theta != 0 and abs(theta) <= 30 and transform_of()["theta"] == 0


@check("ImageDataGenerator", "width_shift_range", "height_shift_range")
def _(t):
    drawn = transform_of(width_shift_range=0.5, height_shift_range=2)
    assert 0 < abs(drawn["ty"]) <= 3 and abs(drawn["tx"]) in (0, 1, 2)
    assert abs(transform_of(height_shift_range=[2])["tx"]) == 2            # a list: one of its values


@check("ImageDataGenerator", "brightness_range")
def _(t):
    brightness = transform_of(brightness_range=(0.5, 0.6))["brightness"]
    assert 0.5 <= brightness <= 0.6
    darker = ImageDataGenerator().apply_transform(PICTURES[0], {"brightness": 0.5})
    assert darker.mean() < PICTURES[0].mean()


@check("ImageDataGenerator", "shear_range")
def _(t):
    shear = transform_of(shear_range=20)["shear"]
    assert shear != 0 and abs(shear) <= 20


@check("ImageDataGenerator", "zoom_range")
def _(t):
    drawn = transform_of(zoom_range=(0.5, 0.6))
    assert 0.5 <= drawn["zx"] <= 0.6 and 0.5 <= drawn["zy"] <= 0.6 and drawn["zx"] != drawn["zy"]


@check("ImageDataGenerator", "channel_shift_range")
def _(t):
    intensity = transform_of(channel_shift_range=10)["channel_shift_intensity"]
    assert 0 < abs(intensity) <= 10


@check("ImageDataGenerator", "fill_mode", "cval")
def _(t):
    image_ = np.ones((6, 6, 1), "float32")
    shifted = ImageDataGenerator(fill_mode="constant", cval=7.0).apply_transform(image_, {"tx": 2})
    np.testing.assert_array_equal(shifted[-2:], 7.0)                       # rows shifted in from outside
    np.testing.assert_array_equal(ImageDataGenerator().apply_transform(image_, {"tx": 2}), 1.0)   # 'nearest'


@check("ImageDataGenerator", "horizontal_flip", "vertical_flip")
def _(t):
    generator = ImageDataGenerator(horizontal_flip=True, vertical_flip=True)
    draws = [generator.get_random_transform((6, 6, 3), seed=s) for s in range(20)]
    assert {d["flip_horizontal"] for d in draws} == {0, 1} and {d["flip_vertical"] for d in draws} == {0, 1}
    flipped = generator.apply_transform(PICTURES[0], {"flip_horizontal": True, "flip_vertical": True})
    np.testing.assert_array_equal(flipped, PICTURES[0][::-1, ::-1])
    assert not transform_of()["flip_horizontal"]


@check("ImageDataGenerator", "rescale")
def _(t):
    np.testing.assert_allclose(ImageDataGenerator(rescale=0.5).standardize(PICTURES[0].copy()), PICTURES[0] / 2)


@check("ImageDataGenerator", "preprocessing_function")
def _(t):
    generator = ImageDataGenerator(preprocessing_function=lambda x: x - 1, rescale=2)
    np.testing.assert_allclose(generator.standardize(PICTURES[0].copy()), (PICTURES[0] - 1) * 2)  # before rescale


@check("ImageDataGenerator", "data_format")
def _(t):
    first = ImageDataGenerator(data_format="channels_first")
    assert (first.channel_axis, first.row_axis, first.col_axis) == (1, 2, 3)
    batch = next(first.flow(np.moveaxis(PICTURES, -1, 1), batch_size=2, shuffle=False))
    assert batch.shape == (2, 3, 6, 6)
    assert ImageDataGenerator(data_format=None).data_format == "channels_last"        # Keras 2: None


@check("ImageDataGenerator", "validation_split")
def _(t):
    generator = ImageDataGenerator(validation_split=0.25)
    assert generator.flow(PICTURES, subset="validation").n == 3
    assert generator.flow(PICTURES, subset="training").n == 9


@check("ImageDataGenerator", "interpolation_order")
def _(t):
    with not_implemented("ImageDataGenerator", "interpolation_order", 0):
        ImageDataGenerator(interpolation_order=0)


@check("ImageDataGenerator", "dtype")
def _(t):
    assert next(ImageDataGenerator(dtype="float64").flow(PICTURES, batch_size=2)).dtype == np.float64
    assert next(ImageDataGenerator(dtype=None).flow(PICTURES, batch_size=2)).dtype == np.float32


def flow_of(t, x=PICTURES, y=None, generator=None, **kwargs):
    """``ImageDataGenerator.flow`` or ``NumpyArrayIterator``, as the check's name says."""
    generator = generator or ImageDataGenerator()
    if t.name == "NumpyArrayIterator":
        kwargs.setdefault("shuffle", True)                           # flow's default
        return NumpyArrayIterator(x, y, generator, **kwargs)
    return generator.flow(x, y, **kwargs)


@check("ImageDataGenerator.flow", "x", "y")
@check("NumpyArrayIterator", "x", "y")
def _(t):
    labels = np.arange(12)
    batch_x, batch_y = flow_of(t, PICTURES, labels, shuffle=False, batch_size=5)[0]
    np.testing.assert_array_equal(batch_x, PICTURES[:5])
    np.testing.assert_array_equal(batch_y, labels[:5])


@check("ImageDataGenerator.flow", "batch_size")
@check("NumpyArrayIterator", "batch_size")
def _(t):
    iterator = flow_of(t, batch_size=5)
    assert len(iterator) == 3 and len(iterator[2]) == 2


@check("ImageDataGenerator.flow", "shuffle")
@check("NumpyArrayIterator", "shuffle")
def _(t):
    labels = np.arange(12)
    assert list(flow_of(t, PICTURES, labels, shuffle=False, batch_size=12)[0][1]) == list(range(12))
    shuffled = flow_of(t, PICTURES, labels, shuffle=True, batch_size=12)[0][1]
    assert sorted(shuffled) == list(range(12)) != list(shuffled)


@check("ImageDataGenerator.flow", "sample_weight")
@check("NumpyArrayIterator", "sample_weight")
def _(t):
    weights = np.linspace(0, 1, 12)
    _, _, batch_weights = flow_of(t, PICTURES, np.arange(12), sample_weight=weights, shuffle=False, batch_size=4)[1]
    np.testing.assert_array_equal(batch_weights, weights[4:8])


@check("ImageDataGenerator.flow", "seed")
@check("NumpyArrayIterator", "seed")
def _(t):
    generator = ImageDataGenerator(rotation_range=40)
    first = flow_of(t, generator=generator, seed=5, batch_size=4)[0]
    again = flow_of(t, generator=generator, seed=5, batch_size=4)[0]
    other = flow_of(t, generator=generator, seed=6, batch_size=4)[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@check("ImageDataGenerator.flow", "save_to_dir", "save_prefix", "save_format")
@check("NumpyArrayIterator", "save_to_dir", "save_prefix", "save_format")
def _(t):
    flow_of(t, batch_size=2, shuffle=False, save_to_dir=str(t.tmp_path), save_prefix="aug", save_format="jpeg")[0]
    names = sorted(p.name for p in t.tmp_path.iterdir())
    assert len(names) == 2 and all(re.fullmatch(r"aug_[01]_\d+\.jpeg", n) for n in names)


@check("ImageDataGenerator.flow", "subset")
@check("NumpyArrayIterator", "subset")
def _(t):
    generator = ImageDataGenerator(validation_split=0.5)
    validation = flow_of(t, PICTURES, np.arange(12), generator=generator, subset="validation", shuffle=False,
                         batch_size=12)
    np.testing.assert_array_equal(validation[0][1], np.arange(6))


@check("NumpyArrayIterator", "image_data_generator")
def _(t):
    iterator = NumpyArrayIterator(PICTURES, None, ImageDataGenerator(rescale=0.5), batch_size=2)
    np.testing.assert_allclose(iterator[0], PICTURES[:2] / 2)


@check("NumpyArrayIterator", "data_format", "dtype")
def _(t):
    iterator = NumpyArrayIterator(np.moveaxis(PICTURES, -1, 1), None, ImageDataGenerator(data_format="channels_first"),
                                  batch_size=2, data_format="channels_first", dtype="float64")
    assert iterator[0].shape == (2, 3, 6, 6) and iterator[0].dtype == np.float64
    assert NumpyArrayIterator(PICTURES, None, None, data_format=None, dtype=None)[0].dtype == np.float32


def directory_of(t, directory, generator=None, **kwargs):
    """``flow_from_directory`` or ``DirectoryIterator``, as the check's name says."""
    generator = generator or ImageDataGenerator()
    if t.name == "DirectoryIterator":
        return DirectoryIterator(directory, generator, **kwargs)
    return generator.flow_from_directory(directory, **kwargs)


@check("ImageDataGenerator.flow_from_directory", "directory", "target_size")
@check("DirectoryIterator", "directory", "target_size")
def _(t):
    iterator = directory_of(t, image_tree(t.tmp_path / "train"), target_size=(4, 3), shuffle=False)
    assert iterator.filenames == [f"abd/img_{i}.png" for i in range(3)] + [f"chest/img_{i}.png" for i in range(3)]
    assert iterator[0][0].shape == (6, 4, 3, 3)


@check("ImageDataGenerator.flow_from_directory", "color_mode")
@check("DirectoryIterator", "color_mode")
def _(t):
    iterator = directory_of(t, image_tree(t.tmp_path / "train"), target_size=(5, 6), color_mode="grayscale")
    assert iterator[0][0].shape == (6, 5, 6, 1)


@check("ImageDataGenerator.flow_from_directory", "classes")
@check("DirectoryIterator", "classes")
def _(t):
    iterator = directory_of(t, image_tree(t.tmp_path / "train"), classes=["chest"], target_size=(5, 6))
    assert iterator.class_indices == {"chest": 0} and iterator.samples == 3


@check("ImageDataGenerator.flow_from_directory", "class_mode")
@check("DirectoryIterator", "class_mode")
def _(t):
    root = image_tree(t.tmp_path / "train")
    batch_x, batch_y = directory_of(t, root, class_mode="binary", shuffle=False, target_size=(5, 6))[0]
    assert batch_y.tolist() == [0, 0, 0, 1, 1, 1] and batch_y.dtype == np.float32
    assert isinstance(directory_of(t, root, class_mode=None, target_size=(5, 6))[0], np.ndarray)


@check("ImageDataGenerator.flow_from_directory", "batch_size", "shuffle")
@check("DirectoryIterator", "batch_size", "shuffle")
def _(t):
    root = image_tree(t.tmp_path / "train")
    iterator = directory_of(t, root, class_mode="sparse", batch_size=4, shuffle=False, target_size=(5, 6))
    assert len(iterator) == 2 and iterator[0][1].tolist() == [0, 0, 0, 1]
    labels = directory_of(t, root, class_mode="sparse", batch_size=6, shuffle=True, seed=2,
                          target_size=(5, 6))[0][1].tolist()
    assert sorted(labels) == [0, 0, 0, 1, 1, 1] != labels


@check("ImageDataGenerator.flow_from_directory", "seed")
@check("DirectoryIterator", "seed")
def _(t):
    root = image_tree(t.tmp_path / "train")
    generator = ImageDataGenerator(rotation_range=45)
    batches = [directory_of(t, root, generator=generator, seed=seed, target_size=(5, 6))[0][0] for seed in (3, 3, 4)]
    np.testing.assert_array_equal(batches[0], batches[1])
    assert not np.array_equal(batches[0], batches[2])


@check("ImageDataGenerator.flow_from_directory", "save_to_dir", "save_prefix", "save_format")
@check("DirectoryIterator", "save_to_dir", "save_prefix", "save_format")
def _(t):
    out = t.tmp_path / "out"
    out.mkdir()
    directory_of(t, image_tree(t.tmp_path / "train"), batch_size=2, target_size=(5, 6), save_to_dir=str(out),
                 save_prefix="seen", save_format="bmp")[0]
    assert len(list(out.glob("seen_*_*.bmp"))) == 2


@check("ImageDataGenerator.flow_from_directory", "follow_links")
@check("DirectoryIterator", "follow_links")
def _(t):
    root = image_tree(t.tmp_path / "elsewhere", classes=("abd",))
    (t.tmp_path / "train" / "abd").mkdir(parents=True)
    (t.tmp_path / "train" / "abd" / "linked").symlink_to(root / "abd", target_is_directory=True)
    assert directory_of(t, t.tmp_path / "train", follow_links=True).samples == 3
    with pytest.raises(ValueError, match="no image files"), pytest.warns(UserWarning, match="has no image files"):
        directory_of(t, t.tmp_path / "train", follow_links=False)


@check("ImageDataGenerator.flow_from_directory", "subset")
@check("DirectoryIterator", "subset")
def _(t):
    generator = ImageDataGenerator(validation_split=1 / 3)
    root = image_tree(t.tmp_path / "train")
    assert directory_of(t, root, generator=generator, subset="validation").filenames == ["abd/img_0.png",
                                                                                       "chest/img_0.png"]
    assert directory_of(t, root, generator=generator, subset="training").samples == 4


@check("ImageDataGenerator.flow_from_directory", "interpolation")
@check("DirectoryIterator", "interpolation")
def _(t):
    write_png(t.tmp_path / "train" / "a" / "x.png", size=(8, 8))
    nearest = directory_of(t, t.tmp_path / "train", target_size=(3, 3), class_mode=None)[0]
    bilinear = directory_of(t, t.tmp_path / "train", target_size=(3, 3), class_mode=None, interpolation="bilinear")[0]
    assert set(np.unique(nearest)) <= set(np.unique(np.asarray(Image.open(t.tmp_path / "train" / "a" / "x.png"))))
    assert not np.array_equal(nearest, bilinear)


@check("ImageDataGenerator.flow_from_directory", "on_error")
@check("DirectoryIterator", "on_error")
def _(t):
    root = image_tree(t.tmp_path / "train")
    (root / "abd" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(image.UnreadableImageError, match="broken.png"):
        directory_of(t, root, batch_size=7, target_size=(5, 6))[0]
    with pytest.warns(UserWarning, match="skipping unreadable file"):
        assert directory_of(t, root, on_error="skip").samples == 6


@check("ImageDataGenerator.flow_from_directory", "sixteen_bit")
@check("DirectoryIterator", "sixteen_bit")
def _(t):
    path = t.tmp_path / "train" / "a" / "x.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 1028, np.uint16)).save(path)
    clipped = directory_of(t, t.tmp_path / "train", target_size=(4, 4), class_mode=None)[0]
    rescaled = directory_of(t, t.tmp_path / "train", target_size=(4, 4), class_mode=None, sixteen_bit="rescale")[0]
    assert clipped.max() == 255 and rescaled.max() == 4                       # 1028 / 257


@check("DirectoryIterator", "image_data_generator")
def _(t):
    iterator = DirectoryIterator(image_tree(t.tmp_path / "train"), ImageDataGenerator(rescale=0), target_size=(5, 6),
                                 class_mode=None, shuffle=False)
    halved = DirectoryIterator(t.tmp_path / "train", ImageDataGenerator(rescale=0.5), target_size=(5, 6),
                               class_mode=None, shuffle=False)
    np.testing.assert_allclose(halved[0], iterator[0] / 2)


@check("DirectoryIterator", "data_format", "dtype")
def _(t):
    iterator = DirectoryIterator(image_tree(t.tmp_path / "train"), None, target_size=(5, 6), class_mode=None,
                                 data_format="channels_first", dtype="float64")
    assert iterator[0].shape == (6, 3, 5, 6) and iterator[0].dtype == np.float64
    defaults = DirectoryIterator(t.tmp_path / "train", None, target_size=(5, 6), class_mode=None,
                                 data_format=None, dtype=None)
    assert defaults[0].shape == (6, 5, 6, 3) and defaults[0].dtype == np.float32


class Indices(Iterator):
    def _get_batches_of_transformed_samples(self, index_array):
        return index_array


@check("Iterator", "n", "batch_size", "shuffle", "seed")
def _(t):
    iterator = Indices(10, 4, False, None)
    assert len(iterator) == 3 and iterator[2].tolist() == [8, 9]
    first, again = Indices(10, 10, True, 7)[0], Indices(10, 10, True, 7)[0]
    assert first.tolist() == again.tolist() != list(range(10)) and sorted(first) == list(range(10))


@check("ImageDataGenerator.fit", "x")
def _(t):
    generator = ImageDataGenerator(featurewise_center=True)
    generator.fit(PICTURES)
    np.testing.assert_allclose(generator.mean.ravel(), PICTURES.mean(axis=(0, 1, 2)), rtol=1e-5)


@check("ImageDataGenerator.fit", "augment", "rounds", "seed")
def _(t):
    means = []
    for augment, rounds, seed in [(False, 1, None), (True, 3, 1), (True, 3, 1), (True, 3, 2)]:
        generator = ImageDataGenerator(featurewise_center=True, fill_mode="constant", zoom_range=(2, 2))
        generator.fit(PICTURES, augment=augment, rounds=rounds, seed=seed)
        means.append(generator.mean.ravel())
    assert means[1].sum() < means[0].sum()                             # zoomed out, the corners are cval=0
    np.testing.assert_array_equal(means[1], means[2])                  # the same seed, the same draws


@check("ImageDataGenerator.standardize", "x")
def _(t):
    batch = PICTURES[:2].copy()
    np.testing.assert_allclose(ImageDataGenerator(rescale=0.1).standardize(batch), PICTURES[:2] * 0.1, rtol=1e-6)


@check("ImageDataGenerator.get_random_transform", "img_shape", "seed")
def _(t):
    generator = ImageDataGenerator(width_shift_range=0.5)
    assert abs(generator.get_random_transform((6, 100, 3), seed=1)["ty"]) > 6       # a fraction of the width
    assert generator.get_random_transform((6, 6, 3), seed=1) == generator.get_random_transform((6, 6, 3), seed=1)


@check("ImageDataGenerator.random_transform", "x", "seed")
def _(t):
    generator = ImageDataGenerator(rotation_range=45)
    first = generator.random_transform(PICTURES[0], seed=1)
    np.testing.assert_array_equal(first, generator.random_transform(PICTURES[0], seed=1))
    np.testing.assert_array_equal(first, generator.apply_transform(PICTURES[0],
                                                                   generator.get_random_transform((6, 6, 3), 1)))
    assert not np.array_equal(first, PICTURES[0])


@check("ImageDataGenerator.apply_transform", "x", "transform_parameters")
def _(t):
    shifted = ImageDataGenerator().apply_transform(PICTURES[0], {"ty": 1, "flip_vertical": True})
    np.testing.assert_array_equal(shifted[::-1, :-1], PICTURES[0][:, 1:])

"""flow_from_directory / flow and Sequence semantics: minidl/keras_semantics.md §2."""
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from minidl.preprocessing.image import (DirectoryIterator, ImageDataGenerator,
                                        NumpyArrayIterator, UnreadableImageError)

matplotlib.use("Agg")

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data" / "Open_I_abd_vs_CXRs"


def _png(path, value, size=(6, 5), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        array = np.full(size[::-1] + (3,), value, dtype=np.uint8)
    else:
        array = np.full(size[::-1], value, dtype=np.uint8)
    Image.fromarray(array, mode).save(path, format="PNG")


@pytest.fixture
def tree(tmp_path):
    """Classes 'C', 'a', 'b' (code-point order), nested files, odd names, a non-image."""
    root = tmp_path / "data"
    _png(root / "a" / "z.png", 10)
    _png(root / "a" / "b file (1).png", 11)
    _png(root / "a" / "sub" / "0.png", 12, mode="L")
    _png(root / "a" / "fooPNG", 13)           # white-list test has no dot in 1.1.x
    (root / "a" / "notes.txt").write_text("not an image")
    _png(root / "C" / "x.jpg", 20)
    _png(root / "b" / "y.bmp", 30)
    _png(root / "b" / "q.PNG", 31)
    return root


def test_class_order_file_order_and_labels(tree, capsys):
    it = ImageDataGenerator().flow_from_directory(tree, target_size=(5, 6), batch_size=3,
                                                  shuffle=False, class_mode="sparse")
    assert capsys.readouterr().out.strip() == "Found 7 images belonging to 3 classes."
    assert it.class_indices == {"C": 0, "a": 1, "b": 2}
    assert it.filenames == [os.path.join("C", "x.jpg"), os.path.join("a", "b file (1).png"),
                            os.path.join("a", "fooPNG"), os.path.join("a", "z.png"),
                            os.path.join("a", "sub", "0.png"), os.path.join("b", "q.PNG"),
                            os.path.join("b", "y.bmp")]
    assert it.classes.dtype == np.int32 and list(it.classes) == [0, 1, 1, 1, 1, 2, 2]
    assert it.filepaths[0] == os.path.join(str(tree), "C", "x.jpg")
    assert it.samples == 7 and len(it) == 3
    x, y = it[2]  # partial last batch
    assert x.shape == (1, 5, 6, 3) and y.dtype == np.float32 and list(y) == [2.0]
    x, y = it[0]
    assert list(x[:, 0, 0, 0]) == [20.0, 11.0, 13.0]


def test_numeric_class_names_sort_as_strings(tmp_path):
    for name in ("10", "2", "1"):
        _png(tmp_path / name / "i.png", 1)
    it = ImageDataGenerator().flow_from_directory(tmp_path, target_size=(5, 6))
    assert list(it.class_indices) == ["1", "10", "2"]
    given = ImageDataGenerator().flow_from_directory(tmp_path, target_size=(5, 6),
                                                     classes=["2", "10"])
    assert given.class_indices == {"2": 0, "10": 1} and given.samples == 2


@pytest.mark.parametrize("class_mode", ["binary", "categorical", "input", None])
def test_label_modes(tree, class_mode):
    kwargs = dict(classes=["C", "b"]) if class_mode == "binary" else {}
    it = ImageDataGenerator(rescale=0.5).flow_from_directory(
        tree, target_size=(5, 6), batch_size=4, shuffle=False, class_mode=class_mode, **kwargs)
    batch = it[0]
    if class_mode is None:
        assert batch.shape == (4, 5, 6, 3)  # images only, no labels
        return
    x, y = batch
    if class_mode == "binary":
        assert y.shape == (3,) and y.dtype == np.float32 and list(y) == [0.0, 1.0, 1.0]
        assert x[0, 0, 0, 0] == 10.0  # rescale 0.5 after loading 20
    elif class_mode == "categorical":
        np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[[0, 1, 1, 1]])
    else:
        np.testing.assert_array_equal(x, y)


def test_sequence_seed_reseeding_and_shuffle(tree):
    gen = ImageDataGenerator()
    it = gen.flow_from_directory(tree, target_size=(5, 6), batch_size=3, seed=42,
                                 class_mode="sparse")
    _, y0 = it[0]
    np.random.seed(42)  # it[0] reseeds with seed + total_batches_seen (0), then permutes
    permutation = np.random.permutation(7)
    np.testing.assert_array_equal(y0, it.classes[permutation[:3]])
    assert it.total_batches_seen == 1
    np.testing.assert_array_equal(it.index_array, permutation)
    it.on_epoch_end()
    assert sorted(it.index_array) == list(range(7))
    with pytest.raises(ValueError, match="length 3"):
        it[3]


def test_next_wraps_with_fresh_permutation_and_partial_tail(tree):
    it = ImageDataGenerator().flow_from_directory(tree, target_size=(5, 6), batch_size=3,
                                                  seed=1, class_mode="sparse")
    sizes, seen = [], []
    for _ in range(6):
        x, _ = next(it)
        sizes.append(len(x))
        seen.append(x[:, 0, 0, 0].tolist())
    assert sizes == [3, 3, 1, 3, 3, 1]
    first_pass = sorted(sum(seen[:3], []))
    second_pass = sorted(sum(seen[3:], []))
    assert first_pass == second_pass == sorted([10, 11, 12, 13, 20, 30, 31])
    it.reset()
    assert it.batch_index == 0


def test_same_seed_same_stream(tree):
    gen = ImageDataGenerator(rotation_range=30, horizontal_flip=True)
    a = gen.flow_from_directory(tree, target_size=(5, 6), batch_size=3, seed=7)
    b = gen.flow_from_directory(tree, target_size=(5, 6), batch_size=3, seed=7)
    for _ in range(4):
        np.testing.assert_array_equal(next(a)[0], next(b)[0])


def test_grayscale_and_rgba_color_modes(tree):
    it = ImageDataGenerator().flow_from_directory(tree, target_size=(4, 4),
                                                  color_mode="grayscale", shuffle=False)
    assert it[0][0].shape == (7, 4, 4, 1)
    it = ImageDataGenerator().flow_from_directory(tree, target_size=(4, 4), color_mode="rgba")
    assert it[0][0].shape[-1] == 4


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageDataGenerator().flow_from_directory(tmp_path / "nowhere")


def test_no_class_folders_or_no_images(tmp_path):
    _png(tmp_path / "flat.png", 1)  # images but no class sub-folders (like TEST/)
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageDataGenerator().flow_from_directory(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.warns(UserWarning, match="has no image files"):
        with pytest.raises(ValueError, match="no image files found"):
            ImageDataGenerator().flow_from_directory(tmp_path)


def test_single_class_binary_warns(tmp_path):
    _png(tmp_path / "only" / "a.png", 5)
    with pytest.warns(UserWarning, match="expects 2 classes, found 1"):
        it = ImageDataGenerator().flow_from_directory(tmp_path, class_mode="binary",
                                                      target_size=(5, 6))
    assert list(it[0][1]) == [0.0]


def test_invalid_arguments(tree):
    gen = ImageDataGenerator()
    for bad in [(0, 5), (5,), (2.5, 3), None]:
        with pytest.raises(ValueError, match="target_size"):
            gen.flow_from_directory(tree, target_size=bad)
    with pytest.raises(ValueError, match="class_mode"):
        gen.flow_from_directory(tree, class_mode="multi")
    with pytest.raises(ValueError, match="color_mode"):
        gen.flow_from_directory(tree, color_mode="cmyk")
    with pytest.raises(ValueError, match="subset"):
        gen.flow_from_directory(tree, subset="test")


def test_corrupt_file_raises_with_name_or_is_skipped(tree):
    (tree / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    it = ImageDataGenerator().flow_from_directory(tree, target_size=(5, 6), batch_size=8,
                                                  shuffle=False)
    assert it.samples == 8  # files are not checked for readability when listed (Keras)
    with pytest.raises(UnreadableImageError, match="broken.png"):
        it[0]
    with pytest.warns(UserWarning, match="skipping unreadable file .*broken.png"):
        skipping = ImageDataGenerator().flow_from_directory(tree, target_size=(5, 6),
                                                            batch_size=8, on_error="skip")
    assert skipping.samples == 7 and len(skipping[0][0]) == 7


def test_follow_links(tmp_path):
    root = tmp_path / "data"
    _png(root / "cls" / "own.png", 1)
    _png(tmp_path / "elsewhere" / "linked.png", 2)
    os.symlink(tmp_path / "elsewhere", root / "cls" / "link")
    os.symlink(tmp_path / "elsewhere", root / "linked_class")
    plain = ImageDataGenerator().flow_from_directory(root, target_size=(5, 6))
    # a symlinked class folder is a class; a symlinked sub-folder is not walked by default
    assert plain.class_indices == {"cls": 0, "linked_class": 1}
    assert plain.filenames == [os.path.join("cls", "own.png"),
                               os.path.join("linked_class", "linked.png")]
    followed = ImageDataGenerator().flow_from_directory(root, target_size=(5, 6),
                                                        follow_links=True)
    assert os.path.join("cls", "link", "linked.png") in followed.filenames
    assert followed.samples == 3


def test_validation_split_subsets(tmp_path):
    for i in range(10):
        _png(tmp_path / "k" / f"{i}.png", i)
    gen = ImageDataGenerator(validation_split=0.3)
    val = gen.flow_from_directory(tmp_path, target_size=(5, 6), subset="validation")
    train = gen.flow_from_directory(tmp_path, target_size=(5, 6), subset="training")
    assert val.filenames == [os.path.join("k", f"{i}.png") for i in range(3)]
    assert train.samples == 7


def test_flow_numpy_iterator():
    x = np.arange(7 * 4 * 4 * 3, dtype=np.float32).reshape(7, 4, 4, 3)
    y = np.arange(7)
    gen = ImageDataGenerator(rescale=2.0)
    it = gen.flow(x, y, batch_size=3, shuffle=False)
    assert isinstance(it, NumpyArrayIterator) and len(it) == 3
    bx, by = it[2]
    np.testing.assert_array_equal(bx, x[6:] * 2)
    np.testing.assert_array_equal(by, [6])
    np.testing.assert_array_equal(x[0, 0, 0], [0, 1, 2])  # the caller's data is untouched
    with pytest.raises(ValueError, match="same length"):
        gen.flow(x, y[:3])
    with pytest.raises(ValueError, match="rank 4"):
        gen.flow(x[0], None)
    shuffled = gen.flow(x, y, batch_size=7, seed=3)
    _, labels = shuffled[0]
    assert sorted(labels) == list(range(7))


def test_show_augmentations_returns_a_figure():
    from matplotlib.figure import Figure

    from minidl.plotting import show_augmentations
    image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.float32)
    gen = ImageDataGenerator(rotation_range=20, horizontal_flip=True, rescale=1. / 255)
    figure = show_augmentations(gen, image, n=5, seed=0)
    assert isinstance(figure, Figure)
    assert sum(1 for axis in figure.axes if axis.images) == 5
    again = show_augmentations(gen, image, n=5, seed=0)
    np.testing.assert_array_equal(figure.axes[1].images[0].get_array(),
                                  again.axes[1].images[0].get_array())
    with pytest.raises(TypeError, match="ImageDataGenerator"):
        show_augmentations(object(), image)


@pytest.mark.skipif(not DATA.exists(), reason="../shared workshop data not available")
def test_workshop_train_folder(capsys):
    gen = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2,
                             rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
                             horizontal_flip=True)
    it = gen.flow_from_directory(DATA / "TRAIN", target_size=(299, 299), batch_size=5,
                                 class_mode="binary")
    assert "Found 65 images belonging to 2 classes." in capsys.readouterr().out
    assert it.class_indices == {"openI_CXR": 0, "openI_abd_xray": 1}
    assert len(it) == 13 and isinstance(it, DirectoryIterator)
    x, y = it[0]
    assert x.shape == (5, 299, 299, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) <= {0.0, 1.0}
    val = ImageDataGenerator(rescale=1. / 255).flow_from_directory(
        DATA / "VAL", target_size=(299, 299), batch_size=5, class_mode="binary")
    assert val.samples == 10 and any("(1)" in name for name in val.filenames)

"""Optional: compare ImageDataGenerator with the real keras-preprocessing 1.1.2.

Skipped unless ``keras_preprocessing`` (and SciPy, which it calls) are installed; they are not
minidl dependencies. To run it: ``pip install keras-preprocessing==1.1.2 scipy`` then
``python -m pytest tests/test_image_keras_crosscheck.py``. Same seeds, same images:
the sampled parameters must be identical and the pixels equal within 1e-3 on the 0-255 scale.
"""
import numpy as np
import pytest

keras_image = pytest.importorskip("keras_preprocessing.image")
pytest.importorskip("scipy")

from minidl.preprocessing.image import ImageDataGenerator  # noqa: E402

CONFIGS = [
    dict(rescale=1. / 255, shear_range=0.2, zoom_range=0.2, rotation_range=20, width_shift_range=0.2,
         height_shift_range=0.2, horizontal_flip=True),                        # the workshop
    dict(rotation_range=45, shear_range=30, zoom_range=[0.5, 1.5], width_shift_range=5,
         height_shift_range=[-3, 3], vertical_flip=True, fill_mode="reflect"),
    dict(rotation_range=30, zoom_range=0.3, fill_mode="wrap", channel_shift_range=20.0),
    dict(rotation_range=30, width_shift_range=0.3, fill_mode="constant", cval=17.0,
         samplewise_center=True, samplewise_std_normalization=True),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("shape", [(37, 53, 3), (64, 64, 1)])
def test_same_parameters_and_pixels_as_keras_preprocessing(kernel_path, config, shape):
    image = np.random.default_rng(7).uniform(0, 255, shape).astype(np.float32)
    ours, theirs = ImageDataGenerator(**config), keras_image.ImageDataGenerator(**config)
    scale = 255.0 if config.get("rescale") else 1.0
    for seed in range(5):
        np.random.seed(seed)
        our_params = ours.get_random_transform(image.shape)
        np.random.seed(seed)
        their_params = theirs.get_random_transform(image.shape)
        for key, value in their_params.items():
            if value is not None:
                assert our_params[key] == pytest.approx(value, abs=0), key
        np.random.seed(seed)
        ours_out = ours.standardize(ours.random_transform(image.copy()))
        np.random.seed(seed)
        theirs_out = theirs.standardize(theirs.random_transform(image.copy()))
        assert np.abs(ours_out - theirs_out).max() * scale <= 1e-3

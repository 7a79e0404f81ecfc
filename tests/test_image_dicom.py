"""DICOM reading through optional pydicom (minidl addition; see dicom.py)."""
import sys

import numpy as np
import pytest

from minidl.preprocessing.image import ImageDataGenerator, img_to_array, load_img
from minidl.preprocessing.image.dicom import dicom_to_array


def test_missing_pydicom_gives_install_hint(tmp_path, monkeypatch):
    path = tmp_path / "scan.dcm"
    path.write_bytes(b"\0" * 200)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # makes `import pydicom` fail
    with pytest.raises(ImportError, match=r"pip install minidl\[dicom\]"):
        load_img(path)


pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402


def _expected_monochrome(ds, invert=False):
    """Slope/intercept, then the first window (DICOM linear formula) or min-max, to 0..255."""
    values = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1)) \
        + float(getattr(ds, "RescaleIntercept", 0))
    if "WindowCenter" in ds:
        center = float(np.atleast_1d(ds.WindowCenter)[0])
        width = float(np.atleast_1d(ds.WindowWidth)[0])
        unit = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    else:
        unit = (values - values.min()) / (values.max() - values.min())
    if invert:
        unit = 1 - unit
    return np.round(unit * 255)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_load_dicom_like_an_image(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    x = img_to_array(load_img(path))
    assert x.shape == ds.pixel_array.shape + (3,) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], _expected_monochrome(ds))
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey replicated into RGB
    resized = img_to_array(load_img(path, target_size=(20, 30), color_mode="grayscale"))
    assert resized.shape == (20, 30, 1)


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    normal = dicom_to_array(ds)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "inverted.dcm"
    ds.save_as(path)
    x = img_to_array(load_img(path, color_mode="grayscale"))[..., 0]
    np.testing.assert_array_equal(x, _expected_monochrome(ds, invert=True))
    assert np.abs(x + normal - 255).max() <= 1


def test_window_center_width_is_used(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = 40, 400  # a soft-tissue window in HU
    path = tmp_path / "windowed.dcm"
    ds.save_as(path)
    x = img_to_array(load_img(path, color_mode="grayscale"))[..., 0]
    np.testing.assert_array_equal(x, _expected_monochrome(ds))
    assert x.min() == 0 or x.max() == 255  # the window saturates part of a CT slice


def test_flow_from_directory_includes_dcm(tmp_path, capsys):
    import shutil
    for cls, name in [("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")]:
        (tmp_path / cls).mkdir()
        shutil.copy(get_testdata_file(name), tmp_path / cls / name)
    it = ImageDataGenerator(rescale=1. / 255).flow_from_directory(
        tmp_path, target_size=(32, 32), batch_size=2, class_mode="binary", shuffle=False)
    assert "Found 2 images belonging to 2 classes." in capsys.readouterr().out
    x, y = it[0]
    assert x.shape == (2, 32, 32, 3) and list(y) == [0.0, 1.0] and x.max() <= 1.0


def test_corrupt_dicom_names_the_file(tmp_path):
    from minidl.preprocessing.image import UnreadableImageError
    path = tmp_path / "bad scan.dcm"
    path.write_bytes(b"definitely not dicom")
    with pytest.raises(UnreadableImageError, match="bad scan.dcm"):
        load_img(path)

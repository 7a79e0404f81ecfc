"""InceptionV3's ImageNet weights: fetched by minidl.weights, checked against the
architecture by minidl.applications (the weights package never builds a model).

No network: the "official" file is put in the cache folder by hand, as a user
without internet would, and its md5 is injected through ``known_files``.
"""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from minidl.applications import inception_v3
from minidl.weights.convert import OfficialFile
from minidl.weights.keras_h5 import LayerWeights, write_keras_h5
from minidl.weights.minidl_h5 import read_minidl_h5_attributes

ORACLE = Path(__file__).resolve().parents[2] / "shared" / "oracle" / "inception_v3_random_notop.h5"


def put_in_cache(cache, filename, layers):
    """Write a Keras legacy file into the cache folder; return known_files naming it official."""
    cache.mkdir(parents=True, exist_ok=True)
    path = write_keras_h5(cache / filename, layers)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    return {filename: OfficialFile("inception_v3", False, filename, md5)}


def count_reference_builds(monkeypatch):
    """Count the InceptionV3 models imagenet_weights builds to check a conversion."""
    builds = []
    real_inception_v3 = inception_v3.InceptionV3

    def counting_inception_v3(*args, **kwargs):
        builds.append(kwargs)
        return real_inception_v3(*args, **kwargs)

    monkeypatch.setattr(inception_v3, "InceptionV3", counting_inception_v3)
    return builds


def test_a_file_that_does_not_fit_inception_v3_is_refused_and_not_cached(tmp_path, monkeypatch):
    builds = count_reference_builds(monkeypatch)
    kernel = np.zeros((3, 3, 3, 32), np.float32)
    known = put_in_cache(tmp_path, "fake_notop.h5", [
        LayerWeights("input_1", []),
        LayerWeights("conv2d_1", [("conv2d_1/kernel:0", kernel)]),
    ])
    with pytest.raises(ValueError, match="containing 1 layers into a model with 188 layers"):
        inception_v3.imagenet_weights(include_top=False, cache_dir=tmp_path, known_files=known,
                                      base_urls=[], progress=False)
    assert builds == [{"weights": None, "include_top": False}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_notop.h5"]  # nothing converted


@pytest.mark.skipif(not ORACLE.exists(), reason=f"{ORACLE} not available")
def test_a_fitting_file_is_checked_converted_cached_and_then_reused(tmp_path, monkeypatch):
    builds = count_reference_builds(monkeypatch)
    data = ORACLE.read_bytes()  # a real Keras file in the official notop layout
    (tmp_path / "oracle_notop.h5").write_bytes(data)
    known = {"oracle_notop.h5": OfficialFile("inception_v3", False, "oracle_notop.h5",
                                              hashlib.md5(data).hexdigest(), len(data))}
    options = {"cache_dir": tmp_path, "known_files": known, "base_urls": [], "progress": False}

    path = inception_v3.imagenet_weights(include_top=False, **options)
    assert path == tmp_path / "oracle_notop.minidl.h5"
    assert len(builds) == 1
    stored = read_minidl_h5_attributes(path)["architecture"]
    assert stored["class_name"] == "Model" and stored["config"]["name"] == "inception_v3"

    assert inception_v3.imagenet_weights(include_top=False, **options) == path
    assert len(builds) == 1  # cached: no model is built to check it again

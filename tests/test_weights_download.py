"""fetch_weights against an HTTP server started here on 127.0.0.1 (never the internet).

The server serves a small stand-in for the official file (a real Keras-layout
HDF5 file, so conversion runs) under several folders: good, corrupted (same
size, wrong bytes), truncated (Content-Length larger than the body) and a 500
error. The stand-in's md5 is injected through ``known_files``.
"""
import hashlib
import http.server
import socket
import threading

import h5py
import numpy as np
import pytest

from minidl.weights import download
from minidl.weights.__main__ import main as cli_main
from minidl.weights.convert import OFFICIAL_FILES, OfficialFile
from minidl.weights.download import WeightsUnavailableError, fetch_weights, weights_cache_dir
from minidl.weights.minidl_h5 import read_minidl_h5, read_minidl_h5_attributes, write_minidl_h5

FILENAME = "tiny_weights_notop.h5"


def make_standin(path):
    rng = np.random.default_rng(7)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"input_1", b"conv2d_1"])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        f.create_group("input_1").attrs["weight_names"] = np.asarray([])
        f.create_group("conv2d_1").attrs["weight_names"] = np.array([b"conv2d_1/kernel:0"])
        f["conv2d_1/conv2d_1/kernel:0"] = kernel
    return kernel


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    path = tmp_path_factory.mktemp("standin") / FILENAME
    kernel = make_standin(path)
    data = path.read_bytes()
    return {"path": path, "data": data, "kernel": kernel, "md5": hashlib.md5(data).hexdigest()}


@pytest.fixture(scope="module")
def server(standin):
    data = standin["data"]
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            folder = self.path.strip("/").split("/")[0]
            if folder == "error":
                self.send_error(500, "server exploded")
                return
            if folder == "corrupt":
                body, length = bytes(255 - b for b in data), len(data)
            elif folder == "truncated":
                body, length = data[: len(data) // 2], len(data)
            elif folder == "good" and self.path.endswith(FILENAME):
                body, length = data, len(data)
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield {"url": lambda folder: f"{base}/{folder}/", "hits": hits}
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def known(standin):
    official = OfficialFile("inception_v3", False, FILENAME, standin["md5"], len(standin["data"]))
    return {FILENAME: official}


def fetch(cache, known, urls, **kwargs):
    return fetch_weights("inception_v3", include_top=False, cache_dir=cache, base_urls=urls,
                         progress=False, known_files=known, **kwargs)


def test_download_verifies_converts_and_caches(tmp_path, server, standin, known):
    cache = tmp_path / "cache"
    path = fetch(cache, known, [server["url"]("good")])
    assert path == cache / "tiny_weights_notop.minidl.h5"
    layers = read_minidl_h5(path)
    np.testing.assert_array_equal(layers[1].arrays[0], standin["kernel"])
    assert read_minidl_h5_attributes(path)["source_md5"] == standin["md5"]
    assert (cache / FILENAME).read_bytes() == standin["data"]
    assert sorted(p.name for p in cache.iterdir()) == [FILENAME, "tiny_weights_notop.minidl.h5"]

    # cached: no request at all, even if every server is broken
    hits_before = len(server["hits"])
    assert fetch(cache, known, [server["url"]("error")]) == path
    assert len(server["hits"]) == hits_before


def test_falls_back_to_the_next_url(tmp_path, server, known):
    start = len(server["hits"])
    path = fetch(tmp_path, known, [server["url"]("error"), server["url"]("good")])
    assert path.exists()
    assert [hit.split("/")[1] for hit in server["hits"][start:]] == ["error", "good"]


@pytest.mark.parametrize("folder, reason", [
    ("corrupt", "checksum mismatch"),
    ("truncated", "truncated transfer"),
    ("error", "500"),
])
def test_failures_raise_with_instructions_and_leave_no_file(tmp_path, server, known, standin, folder, reason):
    cache = tmp_path / "cache"
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(cache, known, [server["url"](folder)])
    message = str(info.value)
    assert reason in message
    assert server["url"](folder) + FILENAME in message            # where to download from
    assert str(cache / FILENAME) in message                          # where to put it
    assert standin["md5"] in message
    assert "--weights none" in message and "weights=None" in message
    assert list(cache.iterdir()) == []                               # nothing partial left
    assert isinstance(info.value, OSError) and isinstance(info.value, RuntimeError)


def test_offline_raises_with_instructions(tmp_path, known):
    with socket.socket() as probe:  # a port on which nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WeightsUnavailableError, match="put it, unchanged, at"):
        fetch(tmp_path, known, [f"http://127.0.0.1:{port}/"], timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_file_dropped_in_cache_by_hand_is_verified_and_converted(tmp_path, server, standin, known):
    (tmp_path / FILENAME).write_bytes(standin["data"])
    hits_before = len(server["hits"])
    path = fetch(tmp_path, known, [server["url"]("error")])
    assert len(server["hits"]) == hits_before
    np.testing.assert_array_equal(read_minidl_h5(path)[1].arrays[0], standin["kernel"])


def test_corrupted_file_in_cache_is_reported_with_both_md5s(tmp_path, standin, known):
    bad = standin["data"][:-10] + b"0123456789"
    (tmp_path / FILENAME).write_bytes(bad)
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(tmp_path, known, [])
    message = str(info.value)
    assert hashlib.md5(bad).hexdigest() in message and standin["md5"] in message
    assert not (tmp_path / "tiny_weights_notop.minidl.h5").exists()


def test_progress_bar_reaches_100_percent(tmp_path, server, known, capsys):
    fetch_weights("inception_v3", cache_dir=tmp_path, base_urls=[server["url"]("good")],
                  progress=True, known_files=known)
    assert "100%" in capsys.readouterr().err


def test_cache_folder_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))
    assert weights_cache_dir() == tmp_path / "home" / "weights"
    monkeypatch.delenv("MINIDL_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights_cache_dir() == tmp_path / ".minidl" / "weights"
    assert weights_cache_dir(tmp_path / "x") == tmp_path / "x"


def test_official_table_and_unknown_names():
    notop = download.official_file("inception_v3", include_top=False)
    assert notop.filename == "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert notop.md5 == "bcbd6486424b2319ff4ef7d526e38f63" and notop.size == 87_910_968
    top = download.official_file("inception_v3", include_top=True)
    assert top.md5 == "9a0d58056eeedaa3f26cb7ebd46da564"
    assert set(OFFICIAL_FILES) == {notop.filename, top.filename}
    with pytest.raises(ValueError, match="resnet50"):
        download.official_file("resnet50")


def test_cli_fetch_uses_the_cache_and_reports_failures(tmp_path, server, monkeypatch, capsys):
    official = download.official_file("inception_v3", include_top=False)
    cached = tmp_path / download.converted_filename(official)
    write_minidl_h5(cached, [("conv2d_1", [("kernel", np.zeros((1, 1, 3, 2), np.float32))])],
                    source_md5=official.md5)
    assert cli_main(["fetch", "inception_v3", "--cache-dir", str(tmp_path)]) == 0
    assert str(cached) in capsys.readouterr().out

    # no cache and only a failing server (never the real internet)
    monkeypatch.setattr(download, "DEFAULT_BASE_URLS", (server["url"]("error"),))
    assert cli_main(["fetch", "inception_v3", "--include-top", "--cache-dir", str(tmp_path / "empty"),
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels.h5" in err and "--weights none" in err

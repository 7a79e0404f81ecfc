"""minidl.datasets: find the workshop data, or download, verify and unpack it atomically.

Downloads go to a local HTTP server on 127.0.0.1 serving a zip built here from
tiny PNGs, with a checksum list made for it.
"""
import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from minidl.datasets import (DATASET_NAME, DatasetChecksumError, DatasetUnavailableError,
                             find_dataset, load_checksums, verify_dataset)

LAYOUT = ["TRAIN/openI_CXR/c1.png", "TRAIN/openI_abd_xray/a1.png", "VAL/openI_CXR/c (1).png",
          "VAL/openI_abd_xray/a2.png", "TEST/chest2.png"]


def png_bytes(seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def archive():
    """(zip bytes, checksum list) for a tiny dataset inside an Open_I_abd_vs_CXRs/ folder."""
    files = {path: png_bytes(i) for i, path in enumerate(LAYOUT)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path, data in files.items():
            zf.writestr(f"{DATASET_NAME}/{path}", data)
        zf.writestr("__MACOSX/._junk", b"ignored")
    checksums = {path: (len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
                 for path, data in files.items()}
    return buffer.getvalue(), checksums


@pytest.fixture
def server():
    """A local HTTP server; set server.body / server.status / server.length_bonus per test."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body) + state.length_bonus))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args):
            pass

    class State:
        body, status, length_bonus = b"", 200, 0

    state = State()
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/{DATASET_NAME}.zip"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))


def cache_listing(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_good_download_is_verified_and_unpacked(server, archive, tmp_path):
    server.body, checksums = archive
    folder = find_dataset(url=server.url, checksums=checksums, progress=False)
    assert folder == tmp_path / "home" / "datasets" / DATASET_NAME
    assert verify_dataset(folder, checksums) == []
    assert (folder / "VAL" / "openI_CXR" / "c (1).png").is_file()
    # the zip and the temporary folder are gone; only the dataset stays
    assert cache_listing(folder.parent) == [DATASET_NAME]
    # the second call finds the cache and does not download (the server now fails)
    server.status = 500
    assert find_dataset(url=server.url, checksums=checksums, progress=False) == folder


def test_corrupted_file_is_refused_and_cache_untouched(server, archive, tmp_path):
    body, checksums = archive
    bad = dict(checksums)
    size, md5, _ = bad["TRAIN/openI_CXR/c1.png"]
    bad["TRAIN/openI_CXR/c1.png"] = (size, md5, "0" * 64)
    server.body = body
    with pytest.raises(DatasetChecksumError, match="wrong checksum: TRAIN/openI_CXR/c1.png"):
        find_dataset(url=server.url, checksums=bad, progress=False)
    assert cache_listing(tmp_path / "home" / "datasets") == []


def test_missing_file_is_refused(server, archive, tmp_path):
    server.body, checksums = archive
    extra = dict(checksums, **{"TEST/abd2.png": (10, "x", "y")})
    with pytest.raises(DatasetChecksumError, match="missing: TEST/abd2.png"):
        find_dataset(url=server.url, checksums=extra, progress=False)
    assert cache_listing(tmp_path / "home" / "datasets") == []


def test_truncated_transfer(server, archive, tmp_path):
    body, checksums = archive
    server.body = body[: len(body) // 2]
    server.length_bonus = len(body) - len(body) // 2     # announces the full size, sends half
    with pytest.raises(DatasetUnavailableError) as info:
        find_dataset(url=server.url, checksums=checksums, progress=False, timeout=5)
    assert server.url in str(info.value)
    assert cache_listing(tmp_path / "home" / "datasets") == []


def test_not_a_zip(server, archive, tmp_path):
    server.body = b"<html>rate limited</html>"
    with pytest.raises(DatasetChecksumError, match="not a valid zip"):
        find_dataset(url=server.url, checksums=archive[1], progress=False)
    assert cache_listing(tmp_path / "home" / "datasets") == []


def test_http_500_names_url_and_folder(server, archive, tmp_path):
    server.status, server.body = 500, b"error"
    with pytest.raises(DatasetUnavailableError) as info:
        find_dataset(url=server.url, checksums=archive[1], progress=False)
    message = str(info.value)
    assert "HTTP error 500" in message and server.url in message
    assert str(tmp_path / "home" / "datasets" / DATASET_NAME) in message


def test_offline_message(archive, tmp_path):
    # a port nobody listens on: connection refused, as when offline
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{DATASET_NAME}.zip"
    with pytest.raises(DatasetUnavailableError) as info:
        find_dataset(url=url, checksums=archive[1], progress=False, timeout=5)
    message = str(info.value)
    assert url in message and "--data" in message and str(tmp_path / "home" / "datasets") in message
    with pytest.raises(DatasetUnavailableError, match="not allowed"):
        find_dataset(download=False)


def test_discovery_order(monkeypatch, tmp_path):
    explicit, from_env, cached = tmp_path / "explicit", tmp_path / "env", tmp_path / "home" / "datasets" / DATASET_NAME
    for folder in (explicit, from_env, cached):
        (folder / "TRAIN").mkdir(parents=True)
        (folder / "VAL").mkdir()
    monkeypatch.setenv("MINIDL_DATA", str(from_env))
    assert find_dataset(explicit) == explicit
    assert find_dataset() == from_env
    monkeypatch.delenv("MINIDL_DATA")
    assert find_dataset() == cached
    with pytest.raises(FileNotFoundError, match="does not hold TRAIN/ and VAL/"):
        find_dataset(tmp_path / "nowhere")


def test_packaged_checksums_match_the_workshop_data():
    checksums = load_checksums()
    assert len(checksums) == 77
    assert sum(p.startswith("TRAIN/") for p in checksums) == 65
    assert sum(p.startswith("VAL/") for p in checksums) == 10
    assert set(p for p in checksums if p.startswith("TEST/")) == {"TEST/chest2.png", "TEST/abd2.png"}


def test_shared_data_verifies(data_dir):
    assert verify_dataset(data_dir) == []

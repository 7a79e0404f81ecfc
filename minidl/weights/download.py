"""Fetch the official Keras ImageNet weights, verify them, convert and cache them.

``InceptionV3(weights='imagenet')`` calls :func:`fetch_weights` (through
``minidl.applications.inception_v3.imagenet_weights``, which also hands it the
architecture to check a fresh conversion against), and so does
``python -m minidl.weights fetch``. It tries, in order:

1. the converted minidl file in the cache folder -> returned at once;
2. the official Keras file in the cache folder (a user without internet can
   copy it there by hand) -> MD5 verified, converted, cached;
3. a download from each base URL in turn (Google's storage, then the v0.5
   release of fchollet/deep-learning-models on GitHub), streamed to a
   temporary file with a progress bar, its size and MD5 verified, then
   converted and cached.

A conversion always verifies the MD5; when the caller passes
``build_architecture`` it also checks every array against that model
(:func:`~minidl.weights.convert.convert`).

The cache folder is ``$MINIDL_HOME/weights`` if ``MINIDL_HOME`` is set, else
``~/.minidl/weights``. A failed or interrupted transfer never leaves a
partial file there (:func:`minidl.utils.atomic_write`). If nothing works, a
:class:`WeightsUnavailableError` says exactly which file to download from
where and where to put it. Only ``urllib`` is used: no extra dependency.

Example::

    path = fetch_weights("inception_v3", include_top=False)
    # ~/.minidl/weights/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.minidl.h5

or ``python -m minidl.weights fetch inception_v3 [--include-top] [--cache-dir D]``.
"""
import hashlib
import http.client
import os
import sys
import urllib.request
from pathlib import Path

from minidl.utils.files import atomic_write, md5_of_file
from minidl.weights.convert import OFFICIAL_FILES, convert
from minidl.weights.minidl_h5 import is_minidl_group
from minidl.weights.keras_h5 import open_hdf5

DEFAULT_BASE_URLS = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/",
    "https://github.com/fchollet/deep-learning-models/releases/download/v0.5/",
)
_CHUNK_BYTES = 1 << 16


class WeightsUnavailableError(OSError, RuntimeError):
    """The weights could not be obtained (offline, HTTP error, bad checksum,
    truncated transfer). The message says which file to put where.

    It is an ``OSError`` (the file could not be fetched, like any I/O error)
    and a ``RuntimeError``, so either ``except`` catches it.
    """


class _TransferError(OSError):
    """One download attempt failed (wrong size or checksum)."""


def weights_cache_dir(cache_dir=None):
    """``cache_dir``, else ``$MINIDL_HOME/weights``, else ``~/.minidl/weights``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    home = os.environ.get("MINIDL_HOME")
    if home:
        return Path(home).expanduser() / "weights"
    return Path.home() / ".minidl" / "weights"


def official_file(name="inception_v3", include_top=False, known_files=None):
    """The :class:`~minidl.weights.convert.OfficialFile` for a model name."""
    candidates = list((known_files or OFFICIAL_FILES).values())
    for candidate in candidates:
        if candidate.model_name == name and candidate.include_top == bool(include_top):
            return candidate
    available = sorted({(c.model_name, c.include_top) for c in candidates})
    raise ValueError(
        f"no known weights file for name={name!r}, include_top={include_top}; "
        f"available (name, include_top): {available}"
    )


def converted_filename(official):
    """Cache name of the converted file: ``<official name>.minidl.h5``."""
    return Path(official.filename).stem + ".minidl.h5"


class _ProgressBar:
    """``[=========>          ]  45%  39.6/87.9 MB`` on stderr, redrawn in place."""

    def __init__(self, total_bytes, label, stream=None, width=30):
        self.total_bytes = total_bytes
        self.stream = stream or sys.stderr
        self.width = width
        self.last_percent = -1
        self.stream.write(f"Downloading {label}\n")

    def update(self, received_bytes):
        if self.total_bytes:
            percent = min(100, received_bytes * 100 // self.total_bytes)
            if percent == self.last_percent:
                return
            self.last_percent = percent
            filled = self.width * percent // 100
            bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (self.width - filled)
            self.stream.write(
                f"\r[{bar}] {percent:3d}%  {received_bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB"
            )
        else:
            self.stream.write(f"\r{received_bytes / 1e6:.1f} MB")
        self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


def download_file(url, destination, expected_md5=None, expected_size=None, progress=True, timeout=30):
    """Stream ``url`` into ``destination`` atomically, checking size and MD5.

    Raises ``OSError`` (``urllib.error.URLError``/``HTTPError`` or a transfer
    error) or ``http.client.HTTPException``; ``destination`` is then untouched.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "minidl"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        announced = int(announced) if announced is not None else None
        if expected_size is not None and announced is not None and announced != expected_size:
            raise _TransferError(f"the server announces {announced:,} bytes, expected {expected_size:,}")
        bar = _ProgressBar(announced or expected_size, url) if progress else None
        digest = hashlib.md5()
        received = 0
        try:
            with atomic_write(destination) as temp_path:
                with open(temp_path, "wb") as output:
                    while True:
                        chunk = response.read(_CHUNK_BYTES)
                        if not chunk:
                            break
                        output.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if bar:
                            bar.update(received)
                # Checked inside atomic_write so that a bad file is deleted.
                if announced is not None and received != announced:
                    raise _TransferError(
                        f"truncated transfer: received {received:,} of {announced:,} bytes"
                    )
                if expected_size is not None and received != expected_size:
                    raise _TransferError(f"received {received:,} bytes, expected {expected_size:,}")
                if expected_md5 is not None and digest.hexdigest() != expected_md5:
                    raise _TransferError(
                        f"checksum mismatch: md5 {digest.hexdigest()}, expected {expected_md5}"
                    )
        finally:
            if bar:
                bar.close()
    return Path(destination)


def _converted_is_current(path, official):
    """True if ``path`` is a readable minidl file converted from ``official``."""
    try:
        with open_hdf5(path) as h5file:
            source_md5 = h5file.attrs.get("source_md5", "")
            return is_minidl_group(h5file) and str(source_md5) == official.md5
    except OSError:
        return False


def _instructions(official, folder, base_urls, attempts):
    size = f"{official.size:,} bytes, " if official.size else ""
    tried = "\n".join(f"  - {attempt}" for attempt in attempts) or "  (nothing)"
    return (
        f"Could not obtain the {official.description}.\n"
        f"Tried:\n{tried}\n"
        f"To fix it, download this file on a machine with internet access:\n"
        f"    {base_urls[0] if base_urls else DEFAULT_BASE_URLS[0]}{official.filename}\n"
        f"    ({size}md5 {official.md5})\n"
        f"and put it, unchanged, at:\n"
        f"    {folder / official.filename}\n"
        f"minidl verifies and converts it on the next run. To train from scratch "
        f"instead, use weights=None (--weights none on the command line)."
    )


def fetch_weights(name="inception_v3", include_top=False, cache_dir=None, base_urls=None,
                  progress=True, known_files=None, timeout=30, build_architecture=None):
    """Return the path of the converted minidl weights, downloading if needed.

    Parameters
    ----------
    name : str
        Model name, ``'inception_v3'``.
    include_top : bool
        The file with the 1000-class classifier, or the notop one.
    cache_dir : str or PathLike, optional
        Defaults to ``$MINIDL_HOME/weights`` or ``~/.minidl/weights``.
    base_urls : sequence of str, optional
        Folders to download from, tried in order (tests pass a local server).
    progress : bool
        Draw a progress bar on stderr.
    known_files : dict, optional
        ``{filename: OfficialFile}`` replacing :data:`OFFICIAL_FILES` (tests).
    timeout : float
        Seconds to wait for a server before trying the next URL.
    build_architecture : callable, optional
        A function returning the :class:`~minidl.weights.convert.ModelLayout`
        the file must fit. Called only when a file is converted (building a
        model takes time), never when the converted file is already cached.

    Raises
    ------
    WeightsUnavailableError
        Offline, HTTP error, checksum mismatch or truncated transfer.
    """
    official = official_file(name, include_top, known_files)
    base_urls = list(base_urls) if base_urls is not None else list(DEFAULT_BASE_URLS)
    folder = weights_cache_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    converted = folder / converted_filename(official)
    if converted.exists() and _converted_is_current(converted, official):
        return converted

    source = folder / official.filename
    attempts = []
    if source.exists():
        actual_md5 = md5_of_file(source)
        if actual_md5 != official.md5:
            attempts.append(
                f"the cached file {source} has md5 {actual_md5}, expected {official.md5} "
                f"(corrupted or incomplete: delete it)"
            )
            raise WeightsUnavailableError(_instructions(official, folder, base_urls, attempts))
    else:
        for base_url in base_urls:
            url = base_url.rstrip("/") + "/" + official.filename
            try:
                download_file(url, source, official.md5, official.size, progress, timeout)
                break
            except (OSError, http.client.HTTPException, ValueError) as error:
                attempts.append(f"{url}: {error}")
        else:
            raise WeightsUnavailableError(_instructions(official, folder, base_urls, attempts))

    architecture = build_architecture() if build_architecture is not None else None
    convert(source, converted, expected_md5=official.md5, architecture=architecture)
    return converted

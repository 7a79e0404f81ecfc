"""The workshop's dataset, ``Open_I_abd_vs_CXRs``: find it, or download and verify it.

77 PNG radiographs from Open-i (NLM), chest versus abdomen (Lakhani et al.,
J Digit Imaging 2018), distributed as ``Open_I_abd_vs_CXRs.zip`` (13.5 MB)::

    Open_I_abd_vs_CXRs/
      TRAIN/openI_CXR/ (33)   TRAIN/openI_abd_xray/ (32)
      VAL/openI_CXR/ (5)      VAL/openI_abd_xray/ (5)
      TEST/chest2.png  TEST/abd2.png

:func:`find_dataset` looks, in this order, at

1. the folder the caller names (``--data DIR``);
2. ``$MINIDL_DATA``;
3. the cache, ``$MINIDL_HOME/datasets/Open_I_abd_vs_CXRs`` or
   ``~/.minidl/datasets/Open_I_abd_vs_CXRs``;
4. a download of the original zip (:func:`download_dataset`).

Why every image is checked rather than the zip: the zip's own checksum is not
recorded anywhere we trust, but the SHA-256 of each of the 77 images is (file
``open_i_abd_vs_cxrs.tsv`` next to this module). A download is unpacked into a
temporary folder *inside the cache folder*, each image is checked (size and
SHA-256), and only then is the folder renamed into place: the cache never holds
a half-unpacked or corrupted dataset.

Example::

    from minidl.datasets import find_dataset
    data = find_dataset()                 # Path('.../Open_I_abd_vs_CXRs')
    train_dir = data / "TRAIN"
"""
import contextlib
import csv
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from minidl.utils.files import atomic_write

DATASET_NAME = "Open_I_abd_vs_CXRs"
DATASET_URL = ("https://github.com/paras42/Hello_World_Deep_Learning/raw/"
               "9921a12c905c00a88898121d5dc538e3b524e520/Open_I_abd_vs_CXRs.zip")
CHECKSUM_FILE = Path(__file__).with_name("open_i_abd_vs_cxrs.tsv")
_CHUNK_BYTES = 1 << 16


class DatasetUnavailableError(OSError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


class DatasetChecksumError(DatasetUnavailableError):
    """Downloaded or unpacked files do not match the recorded checksums."""


def load_checksums(path=CHECKSUM_FILE):
    """``{relative path: (bytes, md5, sha256)}`` from a tab-separated checksum list.

    The file has a header ``path  bytes  md5  sha256``; lines starting with ``#``
    are comments.
    """
    with open(path, newline="", encoding="utf-8") as stream:
        lines = [line for line in stream if line.strip() and not line.startswith("#")]
    rows = csv.DictReader(lines, delimiter="\t")
    return {row["path"]: (int(row["bytes"]), row["md5"], row["sha256"]) for row in rows}


def datasets_cache_dir(cache_dir=None):
    """``cache_dir``, else ``$MINIDL_HOME/datasets``, else ``~/.minidl/datasets``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    home = os.environ.get("MINIDL_HOME")
    if home:
        return Path(home).expanduser() / "datasets"
    return Path.home() / ".minidl" / "datasets"


def looks_like_dataset(folder):
    """True if ``folder`` holds ``TRAIN`` and ``VAL`` sub-folders (the workshop's layout)."""
    folder = Path(folder)
    return (folder / "TRAIN").is_dir() and (folder / "VAL").is_dir()


def _sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_dataset(folder, checksums=None):
    """Check every listed file under ``folder``; return a list of problems (empty = good).

    Each file must exist, have the recorded size and the recorded SHA-256.
    Extra files are allowed (a user may add images of their own).
    """
    checksums = load_checksums() if checksums is None else checksums
    folder = Path(folder)
    problems = []
    for relative, (size, _md5, sha256) in sorted(checksums.items()):
        path = folder / relative
        if not path.is_file():
            problems.append(f"missing: {relative}")
            continue
        actual_size = path.stat().st_size
        if actual_size != size:
            problems.append(f"wrong size: {relative} has {actual_size:,} bytes, expected {size:,}")
            continue
        actual = _sha256_of_file(path)
        if actual != sha256:
            problems.append(f"wrong checksum: {relative} has sha256 {actual}, expected {sha256}")
    return problems


def _offline_instructions(url, target, reason):
    return (
        f"The workshop dataset '{DATASET_NAME}' was not found and could not be downloaded.\n"
        f"Reason: {reason}\n"
        f"To fix it, download on a machine with internet access:\n"
        f"    {url}\n"
        f"and unpack it so that this folder holds TRAIN/, VAL/ and TEST/:\n"
        f"    {target}\n"
        f"or point to an unpacked copy with --data DIR (or the MINIDL_DATA environment variable)."
    )


def find_dataset(data_dir=None, cache_dir=None, download=True, url=DATASET_URL, checksums=None,
                 progress=True, timeout=30):
    """Return the folder holding TRAIN/VAL/TEST, downloading it into the cache if needed.

    Parameters
    ----------
    data_dir : str or PathLike, optional
        An explicit folder (``--data``). It must exist and hold TRAIN/ and VAL/.
    cache_dir : str or PathLike, optional
        Folder of cached datasets (default ``$MINIDL_HOME/datasets`` or ``~/.minidl/datasets``).
    download : bool
        Allow step 4 (download) when nothing is found on disk.
    url, checksums, progress, timeout :
        Passed to :func:`download_dataset` (tests use a local server and their own list).

    Raises
    ------
    FileNotFoundError
        ``data_dir`` or ``$MINIDL_DATA`` names a folder without TRAIN/ and VAL/.
    DatasetUnavailableError
        Not on disk and the download failed (offline, HTTP error, bad files).
    """
    for source, folder in (("--data", data_dir), ("$MINIDL_DATA", os.environ.get("MINIDL_DATA"))):
        if folder:
            folder = Path(folder).expanduser()
            if not looks_like_dataset(folder):
                raise FileNotFoundError(
                    f"{source} points to '{folder}', which does not hold TRAIN/ and VAL/ folders "
                    f"(expected the unpacked {DATASET_NAME} folder)")
            return folder
    cached = datasets_cache_dir(cache_dir) / DATASET_NAME
    if looks_like_dataset(cached):
        return cached
    if not download:
        raise DatasetUnavailableError(_offline_instructions(url, cached, "downloading was not allowed"))
    return download_dataset(cache_dir=cache_dir, url=url, checksums=checksums, progress=progress,
                            timeout=timeout)


def _download_to(url, destination, progress, timeout):
    """Stream ``url`` into ``destination`` (atomically); refuse a truncated transfer."""
    request = urllib.request.Request(url, headers={"User-Agent": "minidl"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        announced = int(announced) if announced is not None else None
        received = 0
        with atomic_write(destination) as temp_path:
            with open(temp_path, "wb") as output:
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                    output.write(chunk)
                    received += len(chunk)
                    if progress and announced:
                        print(f"\rDownloading {DATASET_NAME}.zip: {received / 1e6:5.1f} / "
                              f"{announced / 1e6:.1f} MB", end="", flush=True)
            if progress and announced:
                print()
            if announced is not None and received != announced:
                raise DatasetChecksumError(
                    f"truncated transfer from {url}: received {received:,} of {announced:,} bytes")


def _dataset_root_in(folder):
    """The unpacked dataset folder: ``folder`` itself or its single sub-folder holding TRAIN/VAL."""
    if looks_like_dataset(folder):
        return folder
    for child in sorted(Path(folder).iterdir()):
        if child.is_dir() and looks_like_dataset(child):
            return child
    return None


def download_dataset(cache_dir=None, url=DATASET_URL, checksums=None, progress=True, timeout=30):
    """Download the zip, unpack it, verify all files, move the folder into the cache.

    Returns the path ``<cache>/Open_I_abd_vs_CXRs``. The zip is deleted afterwards.
    Raises :class:`DatasetUnavailableError` (offline, HTTP error) or
    :class:`DatasetChecksumError` (truncated, not a zip, a file missing or
    corrupted); the cache is then left as it was.
    """
    import urllib.error
    import http.client

    checksums = load_checksums() if checksums is None else checksums
    cache = datasets_cache_dir(cache_dir)
    target = cache / DATASET_NAME
    cache.mkdir(parents=True, exist_ok=True)
    zip_path = cache / f"{DATASET_NAME}.zip"
    try:
        _download_to(url, zip_path, progress, timeout)
    except DatasetChecksumError as error:
        raise DatasetChecksumError(_offline_instructions(url, target, str(error))) from error
    except (OSError, http.client.HTTPException, ValueError) as error:
        reason = f"HTTP error {error.code} {error.reason}" if isinstance(error, urllib.error.HTTPError) \
            else f"{type(error).__name__}: {error}"
        raise DatasetUnavailableError(_offline_instructions(url, target, reason)) from error

    unpack_dir = Path(tempfile.mkdtemp(prefix=f".{DATASET_NAME}.", suffix=".partial", dir=cache))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(unpack_dir)   # extractall drops '..' and absolute paths
        except zipfile.BadZipFile as error:
            raise DatasetChecksumError(
                _offline_instructions(url, target, f"the download is not a valid zip file ({error})")) from error
        root = _dataset_root_in(unpack_dir)
        if root is None:
            raise DatasetChecksumError(_offline_instructions(
                url, target, "the zip does not contain a folder with TRAIN/ and VAL/"))
        problems = verify_dataset(root, checksums)
        if problems:
            listed = "\n    ".join(problems[:10]) + ("\n    ..." if len(problems) > 10 else "")
            raise DatasetChecksumError(_offline_instructions(
                url, target, f"{len(problems)} file(s) failed verification:\n    {listed}"))
        if target.exists():                     # e.g. an incomplete folder a user left behind
            raise DatasetUnavailableError(
                f"'{target}' exists but does not hold TRAIN/ and VAL/; remove it and run again")
        os.replace(root, target)                # atomic: the folder appears complete or not at all
    finally:
        shutil.rmtree(unpack_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(zip_path)
    return target

"""Safe file writing and checksums.

A weights file that is half written (the power went out, the user pressed
Ctrl-C, the disk filled up) is worse than no file: the next run would find it,
try to load it and fail with a confusing HDF5 error. So every file minidl
writes goes through :func:`atomic_write`: the data is written to a temporary
file *in the same folder* and renamed over the destination only once writing
succeeded. ``os.replace`` is atomic on POSIX and Windows when both paths are on
the same file system, which is why the temporary file lives next to the target.

Example::

    with atomic_write("model.h5") as tmp_path:
        with h5py.File(tmp_path, "w") as f:
            f["x"] = np.arange(3)
    # model.h5 now exists, complete; on an exception it would not exist at all
"""
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def _default_file_mode():
    """Permissions a normal ``open(path, 'w')`` would give (0o666 minus the umask).

    ``tempfile.mkstemp`` creates files readable by their owner only (0o600);
    without this fix every weights file minidl writes would be private.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path next to ``path``; move it into place on success.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file. Its folder must exist.

    Yields
    ------
    pathlib.Path
        A temporary file (already created, empty) in the same folder. Write
        the complete content there.

    On normal exit the temporary file replaces ``path`` with ``os.replace``.
    On *any* exception -- ``KeyboardInterrupt`` and ``SystemExit`` included --
    the temporary file is deleted, ``path`` is left untouched (an older
    version stays as it was) and the exception propagates.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot write '{path}': the folder '{folder}' does not exist"
        )
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=folder
    )
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        yield temp_path
        os.chmod(temp_path, _default_file_mode())
        os.replace(temp_path, path)
    except BaseException:
        # BaseException, not Exception: Ctrl-C in the middle of a 90 MB write
        # must not leave the temporary file behind either.
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise


def md5_of_file(path, chunk_size=1 << 20):
    """Return the hexadecimal MD5 digest of a file, reading it in 1 MiB chunks.

    MD5 is used only to recognise known files (Keras publishes MD5 sums of its
    weights), not for security.

    Example::

        md5_of_file("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
        # 'bcbd6486424b2319ff4ef7d526e38f63'
    """
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def may_overwrite(path, overwrite):
    """Keras 2's rule before writing ``path``: with ``overwrite=False`` and the file there,
    ask on the terminal (``y``/``n``, asked again until one of them) and return the answer."""
    if overwrite or not os.path.exists(path):
        return True
    answer = ""
    while answer not in ("y", "n"):
        answer = input(f"[WARNING] {path} already exists - overwrite? [y/n]").strip().lower()
    if answer == "y":
        print("[TIP] Next time specify overwrite=True!")
    return answer == "y"

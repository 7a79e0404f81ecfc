"""Small helpers shared by minidl's modules (files, checksums)."""
from minidl.utils.files import atomic_write, md5_of_file

__all__ = ["atomic_write", "md5_of_file"]

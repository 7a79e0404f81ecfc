"""Small helpers shared by minidl's modules: safe file writing, checksums, background batches.

The bottom layer: every other part of minidl may import ``minidl.utils``, and
``minidl.utils`` imports nothing else of minidl. Import the helpers from their
modules: ``minidl.utils.files`` (``atomic_write``, ``md5_of_file``) and
``minidl.utils.prefetch`` (``prefetch``, ``PrefetchIterator``).
"""
from minidl.utils.files import atomic_write, md5_of_file

__all__ = ["atomic_write", "md5_of_file"]

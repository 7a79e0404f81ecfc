"""``prefetch`` for the image pipeline: background batches, as Keras's ``OrderedEnqueuer``.

The code lives in ``minidl/utils/prefetch.py``, because ``Model.fit`` uses it
too and the models must not import the image pipeline. This module gives it
its image-pipeline names::

    from minidl.preprocessing.image import prefetch, PrefetchIterator
    from minidl.preprocessing.image.prefetch import prefetch    # the same function
"""
from minidl.utils.prefetch import PrefetchIterator, prefetch

__all__ = ["PrefetchIterator", "prefetch"]

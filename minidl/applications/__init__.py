"""Ready-made networks with Keras's architecture, names and weight files.

``applications.InceptionV3(weights='imagenet', include_top=False, input_shape=(299, 299, 3))``
is the workshop's starting point; read ``inception_v3.py``.

Example::

    from minidl import applications
    base = applications.InceptionV3(weights=None, include_top=False, input_shape=(299, 299, 3))
"""
from minidl.applications import inception_v3
from minidl.applications.inception_v3 import InceptionV3

__all__ = ["InceptionV3", "inception_v3"]

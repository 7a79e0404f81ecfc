"""``minidl.preprocessing`` -- data preprocessing, as ``keras.preprocessing``.

``from minidl.preprocessing import image`` then ``image.ImageDataGenerator(...)``.
"""
from minidl.preprocessing import image

__all__ = ["image"]

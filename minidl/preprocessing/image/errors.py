"""The error an image file raises when it exists but cannot be decoded.

It has its own module because both readers raise it -- ``loading.py`` (PNG,
JPEG, ... through Pillow) and ``dicom.py`` (through pydicom) -- and
``loading.py`` imports ``dicom.py``: defined in either of them, the other
would have to import it back, a cycle.

Example::

    try:
        img = load_img("scan.png")
    except UnreadableImageError as error:
        print(error)   # load_img: cannot read image file 'scan.png' (corrupt, truncated or not an image): ...
"""


class UnreadableImageError(OSError):
    """An image file exists but cannot be decoded (corrupt, truncated, not an image)."""

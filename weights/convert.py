"""Convert a Keras legacy HDF5 weights file into minidl's format.

This script is a shortcut for learners who look in the ``weights/`` folder;
it does exactly what ``python -m minidl.weights convert`` does:

    python weights/convert.py inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 \
        inception_v3_notop.minidl.h5

See weights/README.md for the file format and the checks the converter makes.
"""
import sys

from minidl.weights.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))

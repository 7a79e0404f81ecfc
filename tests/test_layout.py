"""column_block (minidl/kernels/fast/layout.py): a column slice seen as a contiguous parent + offset.

The engine's kernels write a convolution's channels of a concatenation through it, so it
must give the very memory of the slice (writes land there and nowhere else), find the
right first row and column for slices that start anywhere, and refuse (None) what is not
such a slice rather than guess.
"""
import numpy as np
import pytest

from minidl.kernels.fast.layout import column_block


def test_contiguous_rows_are_their_own_parent():
    rows = np.arange(12.0).reshape(4, 3)
    one_row_of_a_slice = np.zeros((5, 8))[2:3, 1:4]             # one row: contiguous too
    for contiguous in (rows, one_row_of_a_slice):
        parent, first = column_block(contiguous)
        assert parent is contiguous and first == 0


@pytest.mark.parametrize("first_pixel, pixels", [(0, 30), (7, 11), (28, 2)])
@pytest.mark.parametrize("first_channel, channels", [(0, 3), (3, 5), (8, 4)])
def test_channels_of_a_concatenation_are_found_in_its_buffer(first_pixel, pixels, first_channel, channels):
    concatenation = np.arange(2 * 3 * 5 * 12, dtype=np.float32).reshape(2, 3, 5, 12)
    out = concatenation[..., first_channel:first_channel + channels]
    rows = out.reshape(-1, channels)[first_pixel:first_pixel + pixels]   # as the engine's chunks see them
    parent, first = column_block(rows)
    assert parent.flags.c_contiguous and np.shares_memory(parent, concatenation)
    assert first == first_channel and parent.shape == (pixels, 12)
    np.testing.assert_array_equal(parent[:, first:first + channels], rows)
    before = concatenation.copy()
    parent[:, first:first + channels] = -1                      # writes reach the slice, and only it
    assert (rows == -1).all()
    changed = concatenation != before
    assert changed.sum() == rows.size and (concatenation[changed] == -1).all()


def test_what_is_not_a_column_slice_of_a_contiguous_array_is_refused():
    x = np.zeros((6, 8), np.float32)
    assert column_block(x[:, ::2]) is None                      # channels not adjacent
    assert column_block(x.T[:3]) is None                        # transposed
    assert column_block(np.asfortranarray(x)[:, 1:3]) is None   # its memory is not C-ordered
    assert column_block(x.reshape(-1)) is None                  # not rows
    wide = np.zeros((6, 8), np.float64)
    assert column_block(wide.view(np.float32)[:, 2:6]) is None  # a view of another dtype

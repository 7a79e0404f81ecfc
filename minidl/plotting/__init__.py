"""``minidl.plotting`` -- figures for learners (matplotlib)."""
from minidl.plotting.augmentations import show_augmentations

__all__ = ["show_augmentations"]

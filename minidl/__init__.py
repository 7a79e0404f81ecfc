"""minidl: deep learning from scratch in NumPy (+ Numba), with Keras's API.

Start with ``examples/quickstart.py``; the README gives the order in which to
read the source. Importing minidl changes nothing in the process (no threads, no
allocator or thread-pool settings, no Numba import): the engine loads when it first runs.
"""
__version__ = "0.1.0"

from minidl import config
from minidl.parameter import Parameter
from minidl import activations, initializers, losses, metrics, optimizers, layers, models, callbacks
from minidl.gradcheck import check_gradients
from minidl.layers.base import clear_session

__all__ = ["config", "Parameter", "activations", "initializers", "losses", "metrics", "optimizers",
           "layers", "models", "callbacks", "check_gradients", "clear_session", "__version__"]


def __getattr__(name):
    # Heavier sub-packages load on first use, so `import minidl` stays fast.
    import importlib
    if name in ("applications", "preprocessing", "weights", "plotting", "engine"):
        return importlib.import_module(f"minidl.{name}")
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")

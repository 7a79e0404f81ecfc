"""Models: the functional :class:`Model`, :class:`Sequential`, and loading a saved model.

Read ``graph.py`` (how layers are ordered and walked) -> ``model.py`` (forward
and backward over the graph) -> ``training.py`` (compile/fit/evaluate/predict).
"""
from minidl.models.model import Model
from minidl.models.sequential import Sequential
from minidl.models.serialization import model_from_config


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model saved with ``model.save(path)``: architecture, weights, optimizer state."""
    from minidl import weights
    return weights.load_model(filepath, custom_objects=custom_objects, compile=compile)


__all__ = ["Model", "Sequential", "load_model", "model_from_config"]

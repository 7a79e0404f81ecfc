"""Models: the functional :class:`Model`, :class:`Sequential`, and loading a saved model.

Read ``graph.py`` (how layers are ordered and walked) -> ``model.py`` (forward
and backward over the graph) -> ``training.py`` (compile/fit/evaluate/predict).
``serialization.py`` describes a model as a config and rebuilds it;
``saving.py`` saves and loads weights and whole models through the file
formats of :mod:`minidl.weights`.
"""
from minidl.models.model import Model
from minidl.models.sequential import Sequential
from minidl.models.serialization import model_from_config, register_model_class

# serialization.py rebuilds these classes from configs without importing their
# modules (they import it): it finds them here.
register_model_class(Model)
register_model_class(Sequential)


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model saved with ``model.save(path)``: architecture, weights, optimizer state.

    See :func:`minidl.models.saving.load_model`.
    """
    # Imported on first use: saving.py loads h5py, which `import minidl` does not need.
    from minidl.models import saving
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile)


__all__ = ["Model", "Sequential", "load_model", "model_from_config"]

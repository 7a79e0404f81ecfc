"""What tests/test_signature_audit.py runs: the registry of checks and what they share.

``@check(name, *parameters)`` registers a function as the check of those parameters of the
audited callable ``name`` (a key of ``AUDITED`` in the test file). A check gets ``t``: the
test's ``tmp_path``, ``monkeypatch`` and ``capsys``, and ``t.name``. The checks themselves are
in this package's modules, one per part of the API.
"""
import inspect
import re
import threading

import numpy as np
import pytest
from PIL import Image

from minidl.callbacks import Callback
from minidl.layers import Dense, Input, Layer
from minidl.models import Model
from minidl.optimizers import SGD
from minidl.preprocessing.image import PrefetchIterator

CHECKS = {}          # (name, parameter) -> (check function, reason it is expected to fail or None)


def check(name, *parameters, xfail=None):
    """Register the decorated function as the check of ``parameters`` of ``name``.

    ``xfail``: why this check fails today (a discrepancy in a file the audit does not own).
    """
    def register(function):
        for parameter in parameters:
            assert (name, parameter) not in CHECKS, (name, parameter)
            CHECKS[(name, parameter)] = (function, xfail)
        return function
    return register


def parameters_of(function):
    """The parameter names of ``function`` as the table writes them (``**kwargs``, no ``self``)."""
    names = []
    for i, parameter in enumerate(inspect.signature(function).parameters.values()):
        if i == 0 and parameter.name in ("self", "cls"):
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            names.append("**" + parameter.name)
        elif parameter.kind is parameter.VAR_POSITIONAL:
            names.append("*" + parameter.name)
        else:
            names.append(parameter.name)
    return names


def not_implemented(function, argument, value):
    """``pytest.raises`` for minidl's message ``function(argument=value) is not implemented``."""
    return pytest.raises(NotImplementedError, match=re.escape(f"{function}({argument}={value!r})"))


# ---------------------------------------------------------------------------------------------
# small things to call the API with
# ---------------------------------------------------------------------------------------------
RNG = np.random.default_rng(15)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = (X[:, 0] > 0).astype("float32")


def tiny_model(units=1, activation="sigmoid", name=None):
    inputs = Input(shape=(3,))
    return Model(inputs, Dense(units, activation=activation, name="out")(inputs), name=name)


def compiled_model(learning_rate=0.1, **compile_arguments):
    model = tiny_model()
    compile_arguments.setdefault("metrics", ["accuracy"])
    model.compile(optimizer=SGD(learning_rate), loss="binary_crossentropy", **compile_arguments)
    return model


class Batches:
    """A Keras ``Sequence`` over X, Y that records which batch each thread read."""

    def __init__(self, batch_size=2, with_labels=True):
        self.batch_size = batch_size
        self.with_labels = with_labels
        self.reads = []

    def __len__(self):
        return len(X) // self.batch_size

    def __getitem__(self, index):
        self.reads.append((index, threading.current_thread().name))
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return (X[part], Y[part]) if self.with_labels else X[part]


def endless_batches(batch_size=2, with_labels=True):
    """A plain generator (no length), as Keras 2's ``fit_generator`` takes."""
    while True:
        for start in range(0, len(X), batch_size):
            part = slice(start, start + batch_size)
            yield (X[part], Y[part]) if with_labels else X[part]


class Recorder(Callback):
    """Records every hook call as (hook name, batch or epoch, logs)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args: self.calls.append((name,) + args)
        return super().__getattribute__(name)

    def count(self, hook):
        return sum(1 for call in self.calls if call[0] == hook)


def spy_prefetch(monkeypatch):
    """Record the arguments each PrefetchIterator is made with (a list of dicts)."""
    made = []
    original = PrefetchIterator.__init__
    signature = inspect.signature(original)

    def init(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        made.append(dict(bound.arguments))
        original(self, *args, **kwargs)

    monkeypatch.setattr(PrefetchIterator, "__init__", init)
    return made


def spy_method(monkeypatch, cls, name):
    """Replace ``cls.name`` by a recorder of its arguments (a dict, filled when called)."""
    seen = {}
    signature = inspect.signature(getattr(cls, name))

    def record(*args, **kwargs):
        seen.update(signature.bind(*args, **kwargs).arguments)
        return "recorded"

    monkeypatch.setattr(cls, name, record)
    return seen


def layer_kwargs_reach_layer(make):
    """``make(**kwargs)`` builds a layer: Keras's layer keywords reach ``Layer``, others are refused."""
    assert make(name="chosen").name == "chosen"
    with pytest.raises(TypeError, match="kernel_regularizer"):
        make(kernel_regularizer="l2")


def write_png(path, size=(6, 5), value=None, mode="RGB"):
    """A small image file; ``value`` fixes every pixel, else a gradient."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    if value is None:
        array = (np.arange(width * height * 3).reshape(height, width, 3) * 7 % 256).astype("uint8")
    else:
        array = np.full((height, width, 3), value, dtype="uint8")
    img = Image.fromarray(array, "RGB").convert(mode)
    img.save(path)
    return path


def image_tree(root, per_class=3, classes=("abd", "chest")):
    """root/<class>/img_<i>.png for each class."""
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_png(root / name / f"img_{i}.png", value=40 * label + 10 * i + 5)
    return root


class Doubler(Layer):
    """A custom layer, for custom_objects."""

    def forward(self, inputs, training=False):
        return inputs * 2

    def backward(self, grad_output):
        return grad_output * 2


def model_with_custom_layer():
    inputs = Input(shape=(3,))
    return Model(inputs, Dense(1)(Doubler()(inputs)))


def named_model(*units):
    """Input(3) -> Dense layers named d0, d1, ... of the given widths, kernels filled with 1, 2, ..."""
    x = inputs = Input(shape=(3,))
    for i, width in enumerate(units):
        x = Dense(width, name=f"d{i}", kernel_initializer="ones")(x)
    model = Model(inputs, x)
    for i, layer in enumerate(model.layers[1:]):
        layer.kernel.value = layer.kernel.value * (i + 1)
    return model


PICTURES = (RNG.uniform(0, 255, size=(12, 6, 6, 3))).astype("float32")

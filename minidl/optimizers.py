"""Optimizers: turn gradients into parameter updates.

RMSprop (Keras's default): a = rho a + (1 - rho) g^2, p -= lr g / (sqrt(a) + epsilon).

SGD (with optional momentum, Keras's form)::

    velocity = momentum * velocity - lr * g
    p       += velocity                               (plain SGD: p -= lr * g)
    nesterov: p += momentum * velocity - lr * g

Adam, exactly as Keras 2 / tf.keras apply it (minidl/keras_semantics.md §5.6). With k the number of
updates done so far and t = k + 1::

    lr_k    = lr / (1 + decay * k)
    m       = beta_1 * m + (1 - beta_1) * g
    v       = beta_2 * v + (1 - beta_2) * g^2
    alpha_t = lr_k * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    p      -= alpha_t * m / (sqrt(v) + epsilon)

Where epsilon sits: it is added to sqrt(v), the square root of the *uncorrected* v.
Written with the paper's bias-corrected m_hat = m / (1 - beta_1^t) and
v_hat = v / (1 - beta_2^t), the same step is::

    p -= lr_k * m_hat / (sqrt(v_hat) + epsilon / sqrt(1 - beta_2^t))

so Keras's epsilon acts as the paper's epsilon divided by sqrt(1 - beta_2^t): larger
than the paper's in the first steps (31.6x at t = 1 with beta_2 = 0.999), the same once
1 - beta_2^t is close to 1. ``lr=`` is accepted as an alias of ``learning_rate``, as in
Keras 2. The update itself (the three lines m, v, p) is the operation
``kernels.adam_update`` (``minidl/kernels/reference/adam.py``).

Optimizer state (``iterations`` and the m, v arrays) can be saved with
``get_state()`` and restored with ``set_state()`` so training resumes exactly.

Example::

    optimizer = Adam(lr=1e-4, epsilon=1e-8)
    optimizer.apply_gradients(model.trainable_weights)   # uses each Parameter.grad
"""
import numpy as np

from minidl import kernels


class Optimizer:
    """Base class: learning rate (``lr`` alias), decay, state save/restore."""

    name = None

    def __init__(self, learning_rate=0.01, decay=0.0, lr=None, clipnorm=None, clipvalue=None, **unknown):
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown argument(s) {sorted(unknown)}")
        if lr is not None:
            learning_rate = lr
        if learning_rate is None or float(learning_rate) < 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be >= 0, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.decay = float(decay)
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.iterations = 0
        self._slots = {}            # id(parameter) -> dict of state arrays
        self._parameters = []       # the parameters of the last update, in order
        self._pending_state = None  # state loaded before the parameters were known

    @property
    def lr(self):
        return self.learning_rate

    @lr.setter
    def lr(self, value):
        self.learning_rate = float(value)

    def current_learning_rate(self):
        """Keras's time-based decay: lr / (1 + decay * iterations)."""
        if self.decay > 0:
            return self.learning_rate / (1.0 + self.decay * self.iterations)
        return self.learning_rate

    def _clipped(self, grad):
        if self.clipvalue is not None:
            grad = np.clip(grad, -self.clipvalue, self.clipvalue)
        if self.clipnorm is not None:
            norm = float(np.sqrt(np.sum(grad.astype(np.float64) ** 2)))
            if norm > self.clipnorm:
                grad = grad * (self.clipnorm / norm)
        return grad

    def apply_gradients(self, parameters):
        """Update every parameter that has a gradient, then count one iteration."""
        parameters = [p for p in parameters if p.grad is not None]
        self._parameters = parameters
        if self._pending_state is not None:
            self._restore_slots(self._pending_state, parameters)
            self._pending_state = None
        learning_rate = self.current_learning_rate()
        clipping = self.clipvalue is not None or self.clipnorm is not None
        for parameter in parameters:
            slots = self._slots.get(id(parameter))
            if slots is None:                     # the first update of this parameter
                slots = self._slots[id(parameter)] = self.new_slots(parameter)
            grad = self._clipped(parameter.grad) if clipping else parameter.grad
            self.update(parameter, grad, slots, learning_rate)
        self.iterations += 1

    def new_slots(self, parameter):
        return {}

    def update(self, parameter, grad, slots, learning_rate):
        raise NotImplementedError

    # ------------------------------------------------------------- state
    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate, "decay": self.decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue}

    def get_state(self):
        """``{'iterations': k, 'slots': [{name: array}, ...]}`` in parameter order."""
        if self._pending_state is not None:          # set_state() was called; no update since
            return {"iterations": self._pending_state["iterations"],
                    "slots": [{k: v.copy() for k, v in slots.items()} for slots in self._pending_state["slots"]]}
        slots = [{k: v.copy() for k, v in self._slots.get(id(p), {}).items()} for p in self._parameters]
        return {"iterations": self.iterations, "slots": slots}

    def set_state(self, state):
        """Restore ``get_state()``'s result; slots attach to the next update's parameters by order."""
        self.iterations = int(state["iterations"])
        self._slots = {}
        self._pending_state = {"iterations": self.iterations, "slots": list(state.get("slots", []))}

    def _restore_slots(self, state, parameters):
        saved = state["slots"]
        if saved and len(saved) != len(parameters):
            raise ValueError(
                f"{type(self).__name__}: the saved optimizer state has {len(saved)} parameter slots, "
                f"but the model has {len(parameters)} trainable parameters")
        for parameter, slots in zip(parameters, saved):
            for key, value in slots.items():
                if value.shape != parameter.shape:
                    raise ValueError(
                        f"{type(self).__name__}: saved slot '{key}' of shape {value.shape} does not fit "
                        f"parameter '{parameter.name}' of shape {parameter.shape}")
            self._slots[id(parameter)] = {k: np.array(v, dtype=parameter.dtype) for k, v in slots.items()}


class SGD(Optimizer):
    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def new_slots(self, parameter):
        return {"velocity": np.zeros_like(parameter.value)} if self.momentum else {}

    def update(self, parameter, grad, slots, learning_rate):
        if not self.momentum:
            parameter.value -= parameter.value.dtype.type(learning_rate) * grad     # value -= lr * g
            return
        # velocity = momentum * velocity - lr * g;  value += velocity
        # (Nesterov: value += momentum * velocity - lr * g) -- kernels/reference/sgd.py
        kernels.sgd_momentum_update(parameter.value, grad, slots["velocity"], self.momentum, learning_rate,
                                    self.nesterov)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return config


class Adam(Optimizer):
    name = "Adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = 1e-7 if epsilon is None else float(epsilon)
        self.amsgrad = bool(amsgrad)

    def new_slots(self, parameter):
        slots = {"m": np.zeros_like(parameter.value), "v": np.zeros_like(parameter.value)}
        if self.amsgrad:
            slots["vhat"] = np.zeros_like(parameter.value)     # the largest v seen so far
        return slots

    def update(self, parameter, grad, slots, learning_rate):
        t = self.iterations + 1
        alpha = learning_rate * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        if self.amsgrad:
            self._amsgrad_update(parameter.value, grad, slots, alpha)
            return
        kernels.adam_update(parameter.value, grad, slots["m"], slots["v"], self.beta_1, self.beta_2,
                            self.epsilon, alpha)

    def _amsgrad_update(self, value, grad, slots, alpha):
        """AMSGrad (Keras's ``amsgrad=True``): divide by the largest v so far, so a step never
        grows because v shrank::

            vhat = max(vhat, v)
            p   -= alpha_t * m / (sqrt(vhat) + epsilon)
        """
        dtype = value.dtype.type
        m, v, vhat = slots["m"], slots["v"], slots["vhat"]
        m *= dtype(self.beta_1)
        m += dtype(1 - self.beta_1) * grad
        v *= dtype(self.beta_2)
        v += dtype(1 - self.beta_2) * np.square(grad)
        np.maximum(vhat, v, out=vhat)
        value -= dtype(alpha) * m / (np.sqrt(vhat) + dtype(self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, amsgrad=self.amsgrad)
        return config


class RMSprop(Optimizer):
    """Keras's RMSprop (the default of ``compile()``)::

        a  = rho * a + (1 - rho) * g^2
        p -= lr * g / (sqrt(a) + epsilon)
    """

    name = "RMSprop"

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = float(rho)
        self.epsilon = 1e-7 if epsilon is None else float(epsilon)

    def new_slots(self, parameter):
        return {"accumulator": np.zeros_like(parameter.value)}

    def update(self, parameter, grad, slots, learning_rate):
        dtype = parameter.value.dtype.type
        accumulator = slots["accumulator"]
        accumulator *= dtype(self.rho)
        accumulator += dtype(1 - self.rho) * np.square(grad)
        parameter.value -= dtype(learning_rate) * grad / (np.sqrt(accumulator) + dtype(self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(rho=self.rho, epsilon=self.epsilon)
        return config


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier):
    """An optimizer from a name ('adam'), a config dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        name = str(config.pop("name", "")).lower()
        if name in _BY_NAME:
            return _BY_NAME[name](**config)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(_BY_NAME)} or an Optimizer")

"""Losses: a number that says how wrong the predictions are, and its gradient.

Every loss is the **mean over the batch** of a per-sample loss (Keras's
SUM_OVER_BATCH_SIZE). Labels of shape (B,) are read as (B, 1), never
broadcast against (B, 1) predictions into (B, B).

binary_crossentropy, for a probability p of class 1 and a label y in {0, 1}::

    l = -[y log p + (1 - y) log(1 - p)]            p clipped to [1e-7, 1 - 1e-7]
    dl/dp = (p - y) / (p (1 - p))

When p = sigmoid(z) comes from the model's last layer, minidl (like tf.keras)
computes the same loss from the logit z, which never takes log(0)::

    l = max(z, 0) - z y + log(1 + exp(-|z|))
    dl/dz = sigmoid(z) - y

Why from the logits: the two dl/dz agree on paper, since
dl/dp * dp/dz = (p - y) / (p (1 - p)) * p (1 - p) = p - y. In floating point
they do not. For a confidently wrong prediction (z = -30, y = 1), sigmoid(z)
is 9e-14, clipping makes it 1e-7, the loss stops at -log(1e-7) = 16.1 instead
of 30, and the clipped p has zero gradient -- the model gets no signal to fix
its worst mistake. From the logits the loss is 30 and dl/dz = -1. The training
loop takes this path automatically when the output layer's activation is a
sigmoid (``ActivationMixin`` in ``minidl/layers/activation.py``). Every gradient returned here
is the derivative of the value returned next to it, so it is already divided by the number
of values the loss averages: the B samples (B*T for outputs of shape (B, T, K)), and for
binary cross-entropy and the mean squared error, means over the K output units too, by K
as well -- that is, by every element of the output.

categorical_crossentropy, for predictions p over K classes and a one-hot y, as Keras
computes it -- the predictions are first renormalised to sum to 1 and clipped::

    q_k = p_k / s,  s = sum_j p_j          (a softmax output already sums to 1)
    l   = -sum_k y_k log clip(q_k, eps, 1 - eps)
    dl/dp_j = g_j / s - (sum_k g_k p_k) / s^2,   g_k = -y_k / q_k where q_k is inside
                                                  [eps, 1 - eps], else 0 (clipping)

and from the logits: dl/dz = softmax(z) - y.

mean_squared_error: l = mean_k (p_k - y_k)^2, dl/dp = 2 (p - y) / K.

Example::

    loss = minidl.losses.get("binary_crossentropy")
    value = loss(y_true, y_pred)                     # a float
    grad = loss.gradient(y_true, y_pred)             # dL/dy_pred, already divided by B
"""
import numpy as np

from minidl.activations import sigmoid

EPSILON = 1e-7


def align_labels(y_true, y_pred, loss_name):
    """Return y_true as y_pred's shape and dtype: (B,) becomes (B, 1)."""
    y_true = np.asarray(y_true)
    given_shape = y_true.shape
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape + (1,))
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss_name}: labels of shape {given_shape} do not match the model output of shape "
            f"{y_pred.shape}")
    return y_true.astype(y_pred.dtype, copy=False)


class Loss:
    """``loss(y_true, y_pred)`` -> mean loss; ``gradient`` -> dL/dy_pred.

    ``logit_activation`` names the output activation whose logits this loss can
    use directly ('sigmoid' or 'softmax'); ``value_and_grad_from_logits``
    computes the loss and dL/dz from them.
    """

    name = None
    logit_activation = None

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_true = align_labels(y_true, y_pred, self.name)
        return float(np.mean(self.per_sample(y_true, y_pred)))

    def gradient(self, y_true, y_pred):
        raise NotImplementedError

    def value_and_grad_from_logits(self, y_true, logits):
        raise NotImplementedError(f"{self.name} has no logits path")

    def get_config(self):
        return {"name": self.name}


class BinaryCrossentropy(Loss):
    """``from_logits=True``: the model's outputs *are* the logits z (no sigmoid layer at the end)."""

    name = "binary_crossentropy"

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    @property
    def logit_activation(self):
        # With from_logits=True the outputs are already logits: a sigmoid output layer is then
        # part of the model, and its pre-activation must not be used in its place (as in Keras).
        return None if self.from_logits else "sigmoid"

    def per_sample(self, y_true, y_pred):
        if self.from_logits:
            z = y_pred
            return np.mean(np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z))), axis=-1)
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        return np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1)

    def gradient(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_true = align_labels(y_true, y_pred, self.name)
        count = y_pred.size                                     # the loss is a mean over every element
        if self.from_logits:
            return (sigmoid.forward(y_pred) - y_true) / count
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        inside = (y_pred >= EPSILON) & (y_pred <= 1 - EPSILON)  # clipping kills the gradient
        return inside * (p - y_true) / (p * (1 - p)) / count

    def value_and_grad_from_logits(self, y_true, logits):
        y_true = align_labels(y_true, logits, self.name)
        z = logits
        per_element = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
        return float(np.mean(per_element)), (sigmoid.forward(z) - y_true) / z.dtype.type(z.size)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"
    logit_activation = "softmax"

    def per_sample(self, y_true, y_pred):
        p = np.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
        return -np.sum(y_true * np.log(p), axis=-1)

    def gradient(self, y_true, y_pred):
        """The derivative of the mean of ``per_sample`` (see the module docstring)."""
        y_pred = np.asarray(y_pred)
        y_true = align_labels(y_true, y_pred, self.name)
        total = y_pred.sum(axis=-1, keepdims=True)
        normalised = y_pred / total
        inside = (normalised >= EPSILON) & (normalised <= 1 - EPSILON)    # clipping kills the gradient
        grad_normalised = np.where(inside, -y_true / np.clip(normalised, EPSILON, 1 - EPSILON), 0)
        grad = grad_normalised / total - (grad_normalised * y_pred).sum(axis=-1, keepdims=True) / total ** 2
        samples = y_pred.size // y_pred.shape[-1]               # the mean is over B (B*T, ...) values
        return (grad / samples).astype(y_pred.dtype, copy=False)

    def value_and_grad_from_logits(self, y_true, logits):
        y_true = align_labels(y_true, logits, self.name)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        value = float(np.mean(-np.sum(y_true * log_softmax, axis=-1)))
        samples = logits.size // logits.shape[-1]
        return value, (np.exp(log_softmax) - y_true) / logits.dtype.type(samples)


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1)

    def gradient(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_true = align_labels(y_true, y_pred, self.name)
        return 2 * (y_pred - y_true) / y_pred.size                # a mean over every element


_BY_NAME = {
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
}

binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
mean_squared_error = mse = MeanSquaredError()


def get(identifier):
    """A Loss from a Keras name, a config dict or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        cls = _BY_NAME.get(config.pop("name", None))
        if cls is not None:
            return cls(**config)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)} or a minidl.losses.Loss")

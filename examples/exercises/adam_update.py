"""Exercise 3: one Adam update, with Keras's placement of epsilon.

Fill in :func:`adam_update`, then run::

    python examples/exercises/check.py adam_update

The maths (Keras 2 / tf.keras; ``minidl/optimizers.py``). For the t-th update
(t = 1 for the first one) of a parameter p with gradient g::

    m       = beta_1 * m + (1 - beta_1) * g          first moment (running mean of g)
    v       = beta_2 * v + (1 - beta_2) * g^2        second moment (running mean of g^2)
    alpha_t = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    p       = p - alpha_t * m / (sqrt(v) + epsilon)

The bias corrections (1 - beta^t) are folded into alpha_t. Note where epsilon
sits: it is added to sqrt(v) of the UNCORRECTED v. The paper (Kingma & Ba)
writes ``p -= lr * m_hat / (sqrt(v_hat) + epsilon)`` with v_hat = v / (1 - beta_2^t):
the same step as Keras's with the paper's epsilon replaced by epsilon / sqrt(1 - beta_2^t)
(31.6 epsilon at t = 1 with beta_2 = 0.999).
It matters most when gradients are tiny (one check makes them tiny), but the
checks compare to 9 significant digits, so it also shows in the first few steps.

Return NEW arrays; the inputs must be left unchanged.
The checks compare with these four lines of Keras's formula; ``--minidl`` runs the
same checks on minidl's own ``minidl.optimizers.Adam`` (``minidl/optimizers.py``).
"""
import numpy as np


def adam_update(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Return ``(new_value, new_m, new_v)`` after the t-th Adam update (t >= 1).

    value, grad, m, v : arrays of the same shape (m and v start as zeros)
    t                 : the number of this update, 1 for the first
    """
    raise NotImplementedError("adam_update: your code goes here")

"""The workshop's training figure: accuracy and loss per epoch, training vs validation.

The original notebook draws four lines on one plot -- training accuracy
(orange), validation accuracy (blue), training loss (red), validation loss
(green) -- and so does :func:`plot_training_curves`. Reading it: when the
training loss keeps falling but the validation loss rises, the network has
started to memorise the 65 training images (overfitting).

Example::

    history = model.fit_generator(...)
    figure = plot_training_curves(history)        # a History or its .history dict
    figure.savefig("training_curves.png")
"""

# (key, colour, label) as in the workshop notebook.
_LINES = (
    ("accuracy", "orange", "Training accuracy"),
    ("val_accuracy", "blue", "Validation accuracy"),
    ("loss", "red", "Training loss"),
    ("val_loss", "green", "Validation loss"),
)
# Keras 2.2 named the metric 'acc'; accept both spellings.
_ALIASES = {"accuracy": ("accuracy", "acc"), "val_accuracy": ("val_accuracy", "val_acc")}


def _as_dict(history):
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise TypeError("plot_training_curves: expected a History or a dict such as history.history, "
                        f"got {type(history).__name__}")
    return values


def plot_training_curves(history, title="Training and validation accuracy and loss", figsize=(7, 4.5)):
    """Draw the four curves (whichever are present) against the epoch number; return the Figure."""
    import matplotlib.pyplot as plt

    values = _as_dict(history)
    figure, axis = plt.subplots(figsize=figsize)
    drawn = 0
    for key, colour, label in _LINES:
        key = next((k for k in _ALIASES.get(key, (key,)) if k in values), None)
        if key is None or not len(values[key]):
            continue
        series = [float(v) for v in values[key]]
        epochs = range(1, len(series) + 1)
        axis.plot(epochs, series, color=colour, label=label, marker="o" if len(series) < 3 else None)
        drawn += 1
    if not drawn:
        raise ValueError(f"plot_training_curves: no accuracy or loss values in the history (keys: {sorted(values)})")
    from matplotlib.ticker import MaxNLocator
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("Epoch")
    axis.set_ylabel("Accuracy / loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure

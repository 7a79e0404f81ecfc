"""Keras's progress bar, to the character.

While an epoch runs (``verbose=1``)::

    Epoch 1/20
     7/13 [===============>..............] - ETA: 12s - loss: 0.6931 - accuracy: 0.5077

and when it ends::

    13/13 [==============================] - 68s 5s/step - loss: 0.6931 - accuracy: 0.5077 - val_loss: 0.6012 - val_accuracy: 0.7000

On a terminal or in Jupyter the line is redrawn in place (``\\r``); when the
output goes to a file or a pipe only the final line of each epoch is printed.
``verbose=2`` prints one line per epoch without the bar. Values are averaged
over the steps for ``loss``-like entries and shown as they are for stateful
metrics such as accuracy (minidl/keras_semantics.md §6.3).
"""
import sys
import time


def _in_notebook():
    """True inside a Jupyter kernel (not merely when ipykernel was imported)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _is_dynamic(stream):
    return (hasattr(stream, "isatty") and stream.isatty()) or _in_notebook()


def format_value(value):
    return f" {value:.4f}" if abs(value) > 1e-3 else f" {value:.4e}"


def format_duration(seconds):
    seconds = int(seconds)
    if seconds > 3600:
        return f"{seconds // 3600}:{(seconds % 3600) // 60:02d}:{seconds % 60:02d}"
    if seconds > 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def format_per_step(seconds):
    if seconds >= 1:
        return f" {seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/step"
    return f" {seconds * 1e6:.0f}us/step"


class Progbar:
    """A progress bar for ``target`` steps (``None``: unknown, shown as ``  7/Unknown``).

    ``width`` is the bar's width in characters, ``interval`` the least time between two
    redraws, ``stateful_metrics`` the names shown as given rather than averaged over the
    steps, and ``stream`` where to write (``sys.stdout``).
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None, stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.stateful_metrics = set(stateful_metrics or ())
        self.stream = stream or sys.stdout
        self.dynamic = _is_dynamic(self.stream)
        self.start = time.time()
        self.last_update = 0.0
        self.sums = {}
        self.order = []
        self.seen_so_far = 0
        self.total_width = 0

    def update(self, current, values=None, finalize=None):
        """Record ``values`` (a list of (name, value)) at step ``current`` and redraw."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            if name not in self.order:
                self.order.append(name)
            if name in self.stateful_metrics:
                self.sums[name] = [value, 1]
            else:
                step = max(current - self.seen_so_far, 1)
                total, count = self.sums.get(name, [0.0, 0])
                self.sums[name] = [total + value * step, count + step]
        self.seen_so_far = current
        now = time.time()
        if self.verbose == 1:
            if not finalize and now - self.last_update < self.interval:
                return
            if not finalize and not self.dynamic:
                return          # to a file: one line per epoch
            line = self._bar(current, finalize, now) + self._values()
            self._write(line, finalize)
        elif self.verbose == 2 and finalize:
            count = f"{current}/{self.target}" if self.target is not None else f"{current}/Unknown"
            line = f"{count} - {now - self.start:.0f}s" + format_per_step(
                (now - self.start) / max(current, 1)) + self._values()
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last_update = now

    def _bar(self, current, finalize, now):
        elapsed = now - self.start
        per_step = elapsed / current if current else 0.0
        if self.target is None:                 # an unknown number of steps: no bar, no ETA
            return f"{current:7d}/Unknown - {elapsed:.0f}s" + format_per_step(per_step)
        digits = len(str(self.target))
        bar = f"{current:{digits}d}/{self.target} ["
        filled = int(self.width * current / self.target) if self.target else 0
        if filled > 0:
            bar += "=" * (filled - 1) + (">" if current < self.target else "=")
        bar += "." * (self.width - filled) + "]"
        if not finalize:
            return bar + " - ETA: " + format_duration(per_step * (self.target - current))
        return bar + f" - {elapsed:.0f}s" + format_per_step(per_step)

    def _values(self):
        text = ""
        for name in self.order:
            total, count = self.sums[name]
            text += f" - {name}:" + format_value(total / max(count, 1))
        return text

    def _write(self, line, finalize):
        if self.dynamic:
            padding = " " * max(self.total_width - len(line), 0)
            self.stream.write("\r" + line + padding)
            self.total_width = len(line)
            if finalize:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

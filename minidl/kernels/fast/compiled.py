"""How the engine's loops are compiled: two builds of each, kept in Numba's cache, and a word
to the learner while it compiles.

Numba compiles a loop the first time it runs and keeps the machine code in its cache
(``cache=True``: ``__pycache__`` beside the source), so only the first run after an
install pays for compilation. That first run matters: it is a learner's first
impression. A loop compiled with ``parallel=True`` takes about three times as long to
compile as the same loop compiled serially (Numba splits it into tasks and builds a
launcher), and a small model's arrays gain nothing from several threads anyway.

So each hot loop is written once, as a plain Python function, and :class:`TwoBuilds`
compiles it twice, each build only when it is first needed:

* ``serial``   -- ``prange`` runs as ``range``: quick to compile, best for small work;
* ``parallel`` -- ``prange`` spread over the cores: for large work.

A call runs the parallel build when its *work* (the number of elements the operation
touches) is at least ``PARALLEL_WORK``, the serial build otherwise: waking the other
cores costs about 40 us, more than a vectorised loop over a few hundred thousand floats
takes on one core (InceptionV3's 8x8 layers: a ReLU of 123 000 floats in 11 us serially,
45 us in parallel; ``benchmarks/README.md``). A small model never compiles the parallel
build; a large one compiles both, each once. Both builds compute the same numbers bit
for bit: the same loop, each element or block handled by exactly one iteration, whichever
thread runs it (``tests/test_compiled_builds.py``).

When the first compilation of a run starts, :func:`announce_compilation` prints one line,
so that a learner knows why the first epoch is slow. How long the first run takes, cold
and warm: ``benchmarks/README.md``.

Example::

    def _scale(x, factor, out):
        for i in prange(x.size):
            out[i] = x[i] * factor

    _scale_kernel = TwoBuilds(_scale)
    _scale_kernel(x.size, x, factor, out)        # the work, then the loop's own arguments
"""
import sys
import threading
import types

from numba import njit

_SERIAL_SUFFIX = "_serial_numpy_errors"     # the serial build's name in Numba's cache
PARALLEL_WORK = 1 << 20       # elements: below, one core is enough (and compiles three times faster)
_announced = threading.Event()


class TwoBuilds:
    """One loop, compiled serially and in parallel, each on first use (see the module docstring)."""

    def __init__(self, function):
        self.parallel = njit(cache=True, parallel=True, nogil=True)(function)
        # error_model="numpy", as the parallel build has: x / 0 gives inf or nan, as in NumPy,
        # instead of a check for ZeroDivisionError in every division, which keeps Numba from
        # vectorising the loop (Adam's update ran 7x slower per element in the serial build).
        # (Its cache entry has a name of its own, "_serial_numpy_errors": Numba's cache does not
        # tell builds apart by error model, and must not load one compiled before.)
        self.serial = njit(cache=True, nogil=True, error_model="numpy")(
            _renamed_copy(function, function.__name__ + _SERIAL_SUFFIX))

    def __call__(self, work, *arrays_and_scalars):
        build = self.parallel if work >= PARALLEL_WORK else self.serial
        return build(*arrays_and_scalars)


def _renamed_copy(function, name):
    """The same code under another name: Numba caches by name, so each build gets its own entry."""
    copy = types.FunctionType(function.__code__, function.__globals__, name, function.__defaults__,
                              function.__closure__)
    copy.__qualname__ = function.__qualname__ + _SERIAL_SUFFIX
    copy.__doc__ = function.__doc__
    copy.__module__ = function.__module__
    return copy


def announce_compilation():
    """Print one line when Numba starts compiling one of minidl's loops, once per process.

    Compilation happens on a cold cache only -- the first run after installing or updating
    minidl; later runs load the compiled loops from the cache and say nothing.
    """
    try:
        from numba.core import event
    except ImportError:          # an older Numba without the event API: stay quiet
        return

    class FirstCompilation(event.Listener):
        def on_start(self, compile_event):
            function = compile_event.data["dispatcher"].py_func
            module = getattr(function, "__module__", None) or ""    # None for code made by exec()
            if module.startswith("minidl.") and not _announced.is_set():
                _announced.set()
                print("minidl: compiling its kernels for this machine -- the first run only, "
                      "later runs load them from the cache", file=sys.stderr, flush=True)

        def on_end(self, compile_event):
            pass

    event.register("numba:compile", FirstCompilation())

"""The workshop's training step and inference: minidl against TensorFlow, PyTorch and JAX.

The step: InceptionV3 without its top (299x299x3, random weights, every layer trainable)
+ GlobalAveragePooling2D -> Dense(256, relu) -> Dropout(0.5) -> Dense(1, sigmoid),
binary cross-entropy, Adam(lr=1e-4), ``train_on_batch`` on a batch of 5 float32 images.
Inference: ``predict`` on the same batch.

Each framework runs in its own subprocess, so the peak memory (RSS) it reports is its own
and frameworks cannot slow each other down (thread pools, allocators). Per framework:
median time over ``--steps`` steps after ``--warmup`` warm-up steps, GFLOP/s (forward
5.71 GMAC = 11.4 GFLOP per image, a training step ~3x the forward), and peak RSS after
building the model, after the training steps, and in a fresh process that only predicts.

Frameworks that are not importable are skipped with a note. To compare, install what
``benchmarks/requirements-compare.txt`` lists (CPU builds).

Usage::

    PYTHONPATH=. python benchmarks/bench_step.py                 # minidl + what is installed
    PYTHONPATH=. python benchmarks/bench_step.py --only minidl --steps 7
    PYTHONPATH=. python benchmarks/bench_step.py --only minidl,torch-plain
    PYTHONPATH=. python benchmarks/bench_step.py --python tensorflow=/path/to/tfenv/bin/python

``--python FRAMEWORK=PATH`` runs one framework's worker with another interpreter, so
TensorFlow can live in its own virtual environment (its NumPy pin then never touches
minidl's). The last columns give minidl's time divided by each framework's: the issue's
target is <= 1.00x against TensorFlow.

Frameworks (``--only``): minidl, tensorflow (tf.keras / Keras 3 on TF), keras-torch and
keras-jax (Keras 3's InceptionV3 on those backends), torch-plain (the hand-written
channels_last InceptionV3 below, ``_plain_torch_inception_v3``).

Transfer learning (``--phases train,frozen,top2,predict``): ``frozen`` is the same training
step with the base frozen (``base.trainable = False``: only the head learns; frozen batch
norms use their moving statistics), ``top2`` Keras's fine-tuning recipe (``model.layers[:249]``
frozen, the top two Inception blocks and the head trained with SGD(lr=1e-4, momentum=0.9)).
PyTorch does the same with ``requires_grad_(False)`` and ``eval()`` on the frozen modules.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BATCH = 5
IMAGE = 299
FORWARD_GMAC_PER_IMAGE = 5.71       # InceptionV3 notop at 299x299 (convolutions dominate)
FRAMEWORKS = ("minidl", "tensorflow", "keras-torch", "keras-jax", "torch-plain")
PHASES = ("train", "frozen", "top2", "predict")     # train = the full fine-tune
FINE_TUNE_FROM = 249                                # Keras's recipe: the top two Inception blocks


# ----------------------------------------------------------------------------- minidl model
def build_workshop_model(base=None, phase="train"):
    """The workshop's model in minidl: InceptionV3 notop (or ``base``) + the small classification
    head; with ``phase`` 'frozen' or 'top2', frozen as that transfer-learning step wants."""
    from minidl.applications import InceptionV3
    from minidl.layers import Dense, Dropout, GlobalAveragePooling2D
    from minidl.models import Model, Sequential
    from minidl.optimizers import SGD, Adam

    if base is None:
        base = InceptionV3(weights=None, include_top=False, input_shape=(IMAGE, IMAGE, 3))
    top = Sequential()
    top.add(GlobalAveragePooling2D(input_shape=base.output_shape[1:]))
    top.add(Dense(256, activation="relu"))
    top.add(Dropout(0.5))
    top.add(Dense(1, activation="sigmoid"))
    model = Model(base.input, top(base.output))
    if phase == "frozen":
        base.trainable = False
    if phase == "top2":
        for index, layer in enumerate(model.layers):
            layer.trainable = index >= FINE_TUNE_FROM
        model.compile(SGD(learning_rate=1e-4, momentum=0.9), "binary_crossentropy", ["accuracy"])
    else:
        model.compile(Adam(lr=1e-4, epsilon=1e-8), "binary_crossentropy", ["accuracy"])
    return model


def workshop_batch(batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, IMAGE, IMAGE, 3), dtype=np.float32)
    y = (np.arange(batch) % 2).astype(np.float32)
    return x, y


def peak_rss_gb():
    """Peak resident memory of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


CPU_TIMES = []   # process CPU seconds of each timed call (all threads): robust to other load


def time_calls(function, steps, warmup):
    """Wall seconds of each of ``steps`` calls after ``warmup`` calls (CPU seconds in CPU_TIMES)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        CPU_TIMES.append(time.process_time() - start_cpu)
    return times


# ----------------------------------------------------------------------------- workers
def _worker_minidl(phase, steps, warmup):
    start = time.perf_counter()
    import minidl  # noqa: F401
    import_seconds = time.perf_counter() - start
    model = build_workshop_model(phase=phase)
    x, y = workshop_batch()
    result = {"import_s": import_seconds, "rss_built_gb": peak_rss_gb()}
    if phase == "predict":
        result["predict_s"] = time_calls(lambda: model.predict(x, batch_size=BATCH), steps, warmup)
    else:
        result[f"{phase}_s"] = time_calls(lambda: model.train_on_batch(x, y), steps, warmup)
    result[f"rss_{phase}_gb"] = peak_rss_gb()
    return result


def _keras3_model(keras, phase="train"):
    base = keras.applications.InceptionV3(weights=None, include_top=False,
                                          input_shape=(IMAGE, IMAGE, 3))
    head = keras.Sequential([keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dropout(0.5),
                             keras.layers.Dense(1, activation="sigmoid")])
    model = keras.Model(base.input, head(base.output))
    if phase == "frozen":
        base.trainable = False
    if phase == "top2":
        for index, layer in enumerate(model.layers):
            layer.trainable = index >= FINE_TUNE_FROM
        optimizer = keras.optimizers.SGD(learning_rate=1e-4, momentum=0.9)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=1e-4, epsilon=1e-8)
    # Keyword arguments: Keras 3's third positional parameter is loss_weights, not metrics.
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _worker_keras(backend, phase, steps, warmup):
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    model = _keras3_model(keras, phase)
    x, y = workshop_batch()
    result = {"version": f"keras {keras.__version__} on {backend}", "rss_built_gb": peak_rss_gb()}
    if phase == "predict":
        result["predict_s"] = time_calls(lambda: model.predict_on_batch(x), steps, warmup)
    else:
        result[f"{phase}_s"] = time_calls(lambda: model.train_on_batch(x, y), steps, warmup)
    result[f"rss_{phase}_gb"] = peak_rss_gb()
    return result


def _plain_torch_inception_v3():
    """InceptionV3 without top + the workshop head in plain PyTorch (Keras's layer sizes:
    conv without bias -> BatchNorm(eps=1e-3, scale=False is approximated by affine=True)
    -> ReLU; 'same' paddings as in Keras for odd kernels)."""
    import torch
    from torch import nn

    class ConvBN(nn.Module):
        def __init__(self, cin, cout, kernel, stride=1, padding="same"):
            super().__init__()
            kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
            pad = (kernel[0] // 2, kernel[1] // 2) if padding == "same" else 0
            self.conv = nn.Conv2d(cin, cout, kernel, stride, pad, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    def pool_avg():
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    class Block35(nn.Module):
        def __init__(self, cin, pool_filters):
            super().__init__()
            self.b1 = ConvBN(cin, 64, 1)
            self.b5 = nn.Sequential(ConvBN(cin, 48, 1), ConvBN(48, 64, 5))
            self.b3 = nn.Sequential(ConvBN(cin, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3))
            self.bp = nn.Sequential(pool_avg(), ConvBN(cin, pool_filters, 1))

        def forward(self, x):
            return torch.cat([self.b1(x), self.b5(x), self.b3(x), self.bp(x)], 1)

    class Reduce35(nn.Module):
        def __init__(self):
            super().__init__()
            self.b3 = ConvBN(288, 384, 3, 2, "valid")
            self.bd = nn.Sequential(ConvBN(288, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3, 2, "valid"))

        def forward(self, x):
            return torch.cat([self.b3(x), self.bd(x), nn.functional.max_pool2d(x, 3, 2)], 1)

    class Block17(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.b1 = ConvBN(768, 192, 1)
            self.b7 = nn.Sequential(ConvBN(768, c, 1), ConvBN(c, c, (1, 7)), ConvBN(c, 192, (7, 1)))
            self.bd = nn.Sequential(ConvBN(768, c, 1), ConvBN(c, c, (7, 1)), ConvBN(c, c, (1, 7)),
                                    ConvBN(c, c, (7, 1)), ConvBN(c, 192, (1, 7)))
            self.bp = nn.Sequential(pool_avg(), ConvBN(768, 192, 1))

        def forward(self, x):
            return torch.cat([self.b1(x), self.b7(x), self.bd(x), self.bp(x)], 1)

    class Reduce17(nn.Module):
        def __init__(self):
            super().__init__()
            self.b3 = nn.Sequential(ConvBN(768, 192, 1), ConvBN(192, 320, 3, 2, "valid"))
            self.b7 = nn.Sequential(ConvBN(768, 192, 1), ConvBN(192, 192, (1, 7)),
                                    ConvBN(192, 192, (7, 1)), ConvBN(192, 192, 3, 2, "valid"))

        def forward(self, x):
            return torch.cat([self.b3(x), self.b7(x), nn.functional.max_pool2d(x, 3, 2)], 1)

    class Block8(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.b1 = ConvBN(cin, 320, 1)
            self.b3 = ConvBN(cin, 384, 1)
            self.b3a, self.b3b = ConvBN(384, 384, (1, 3)), ConvBN(384, 384, (3, 1))
            self.bd = nn.Sequential(ConvBN(cin, 448, 1), ConvBN(448, 384, 3))
            self.bda, self.bdb = ConvBN(384, 384, (1, 3)), ConvBN(384, 384, (3, 1))
            self.bp = nn.Sequential(pool_avg(), ConvBN(cin, 192, 1))

        def forward(self, x):
            b3, bd = self.b3(x), self.bd(x)
            return torch.cat([self.b1(x), self.b3a(b3), self.b3b(b3), self.bda(bd), self.bdb(bd),
                              self.bp(x)], 1)

    return nn.Sequential(
        ConvBN(3, 32, 3, 2, "valid"), ConvBN(32, 32, 3, 1, "valid"), ConvBN(32, 64, 3),
        nn.MaxPool2d(3, 2), ConvBN(64, 80, 1, 1, "valid"), ConvBN(80, 192, 3, 1, "valid"),
        nn.MaxPool2d(3, 2), Block35(192, 32), Block35(256, 64), Block35(288, 64), Reduce35(),
        Block17(128), Block17(160), Block17(160), Block17(192), Reduce17(), Block8(1280),
        Block8(2048), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 256), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(256, 1))


# The first modules of _plain_torch_inception_v3 that Keras's layers[:249] hold (stem, mixed0-8),
# and all of the base's (the head starts at the pooling).
_TORCH_FROZEN_MODULES = {"frozen": 18, "top2": 16}


def _worker_torch_plain(phase, steps, warmup):
    import torch
    model = _plain_torch_inception_v3().to(memory_format=torch.channels_last)
    frozen = model[:_TORCH_FROZEN_MODULES.get(phase, 0)]
    frozen.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if phase == "top2":
        optimizer = torch.optim.SGD(trainable, lr=1e-4, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(trainable, lr=1e-4, eps=1e-8)
    loss_function = torch.nn.BCEWithLogitsLoss()
    x_numpy, y_numpy = workshop_batch()
    x = torch.from_numpy(x_numpy).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(y_numpy).reshape(-1, 1)
    result = {"version": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
              "rss_built_gb": peak_rss_gb()}

    def train_step():
        model.train()
        frozen.eval()                  # Keras's semantics: frozen batch norms use moving statistics
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(x), y)
        loss.backward()
        optimizer.step()

    def predict():
        model.eval()
        with torch.inference_mode():
            torch.sigmoid(model(x))

    result[f"{phase}_s"] = time_calls(predict if phase == "predict" else train_step, steps, warmup)
    result[f"rss_{phase}_gb"] = peak_rss_gb()
    return result


IMPORTS = {"minidl": "minidl", "tensorflow": "tensorflow", "keras-torch": "torch",
           "keras-jax": "jax", "torch-plain": "torch"}


def worker(framework, phase, steps, warmup):
    if framework == "minidl":
        return _worker_minidl(phase, steps, warmup)
    if framework == "torch-plain":
        return _worker_torch_plain(phase, steps, warmup)
    backend = {"tensorflow": "tensorflow", "keras-torch": "torch", "keras-jax": "jax"}[framework]
    return _worker_keras(backend, phase, steps, warmup)


_PYTHONS = {}   # framework -> interpreter (--python), e.g. a virtual environment holding TensorFlow


def python_for(framework):
    """The interpreter that runs ``framework``'s worker: ``--python NAME=PATH`` or this one."""
    return _PYTHONS.get(framework, sys.executable)


def importable(framework):
    module = IMPORTS[framework]
    code = f"import {module}" + ("; import keras" if framework.startswith(("keras", "tensorflow")) else "")
    completed = subprocess.run([python_for(framework), "-c", code], capture_output=True,
                               env=_child_env())
    return completed.returncode == 0


THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
_THREADS = [None]


def _child_env():
    env = dict(os.environ)
    if _THREADS[0]:
        env.update({name: str(_THREADS[0]) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_in_subprocess(framework, phase, steps, warmup):
    command = [python_for(framework), os.path.abspath(__file__), "--worker", framework, "--phase", phase,
               "--steps", str(steps), "--warmup", str(warmup)]
    completed = subprocess.run(command, capture_output=True, text=True, env=_child_env())
    if completed.returncode != 0:
        raise RuntimeError(f"{framework} {phase} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- compile time
_EXERCISE_KERNELS = """
import time
start = time.perf_counter()
import numpy as np
from minidl import kernels
from minidl.optimizers import Adam
from minidl.parameter import Parameter
imported = time.perf_counter()
x = np.random.rand(2, 7, 7, 3).astype(np.float32)
_, _, pads = kernels.conv_geometry(x.shape, (3, 3), (1, 1), "same")
cols = kernels.im2col(x, (3, 3), (1, 1), pads)
kernels.col2im(cols, x.shape, (3, 3), (1, 1), pads)
y, argmax = kernels.max_pool_forward(x, (3, 3), (2, 2), ((0, 0), (0, 0)))
kernels.max_pool_backward(y, argmax, x.shape)
z = kernels.avg_pool_forward(x, (3, 3), (1, 1), pads)
kernels.avg_pool_backward(z, x.shape, (3, 3), (1, 1), pads)
beta = np.zeros(3, np.float32)
out, mean, variance, inv_std = kernels.batchnorm_train_forward(x, None, beta, 1e-3)
kernels.batchnorm_backward(x, x, mean, inv_std, None)
kernels.batchnorm_inference(x, mean, variance, None, beta, 1e-3)
kernels.relu_backward(kernels.relu_forward(x), x)
grad_x, _ = kernels.conv2d_backward(kernels.conv2d_forward(x, np.ones((3, 3, 3, 2), np.float32), (1, 1), pads),
                                    x, np.ones((3, 3, 3, 2), np.float32), (1, 1), pads)
from minidl.kernels.fast import batchnorm_numba, winograd
affine = batchnorm_numba.batchnorm_inference_affine(mean, variance, None, beta, 1e-3, 3, np.float32)
rows = x.reshape(-1, 3)
batchnorm_numba.batchnorm_inference_rows(rows, affine, relu=True, out=rows)
wide = np.random.rand(1, 16, 16, 48).astype(np.float32)   # big enough for Winograd (winograd_plan)
kernel = np.random.rand(3, 3, 48, 4).astype(np.float32)
plan = winograd.winograd_plan(wide.shape, kernel.shape, (1, 1), ((1, 1), (1, 1)))
winograd.winograd_conv2d_forward(wide, winograd.transform_kernel(kernel, plan), plan)
parameter = Parameter("p", np.ones(4, np.float32)); parameter.grad = np.ones(4, np.float32)
Adam().apply_gradients([parameter])
print(imported - start, time.perf_counter() - imported)
"""


def import_and_jit_report():
    """Import time of minidl with warm Numba caches, and the first-call cost of every
    float32 kernel with a cold cache (compiling) and with a warm one (loading)."""
    import tempfile

    def run(code, cache_dir=None):
        env = _child_env()
        if cache_dir:
            env["NUMBA_CACHE_DIR"] = cache_dir
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   env=env)
        if completed.returncode != 0:
            raise RuntimeError(completed.stderr[-2000:])
        return [float(v) for v in completed.stdout.split()]

    import_code = "import time; s = time.perf_counter(); import minidl; print(time.perf_counter() - s)"
    run(import_code)  # make sure caches are warm
    warm_import = statistics.median(run(import_code)[0] for _ in range(3))
    with tempfile.TemporaryDirectory() as cache_dir:
        _, cold_kernels = run(_EXERCISE_KERNELS, cache_dir)
        _, warm_kernels = run(_EXERCISE_KERNELS, cache_dir)
    return warm_import, cold_kernels, warm_kernels


def _pooled(earlier, result):
    """Merge one round's result into the earlier rounds': step times appended, peaks maxed."""
    if earlier is None:
        return result
    merged = dict(earlier)
    for key, value in result.items():
        if isinstance(value, list):
            merged[key] = earlier[key] + value
        elif key.startswith("rss"):
            merged[key] = max(earlier[key], value)
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the frameworks in turn this many times (fresh processes each "
                             "round) and pool their step times: fairer on a shared machine")
    parser.add_argument("--only", default=",".join(FRAMEWORKS),
                        help=f"comma-separated subset of {', '.join(FRAMEWORKS)}")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="train", help=argparse.SUPPRESS)
    parser.add_argument("--phases", default="train,predict",
                        help=f"what to time, comma-separated from {', '.join(PHASES)} (train = the full "
                             "fine-tune; frozen / top2: see the module docstring)")
    parser.add_argument("--no-import-time", action="store_true", help="skip the import-time probe")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread count for every framework (sets NUMBA/OPENBLAS/OMP/MKL/TF "
                             "variables); 1 compares the work done when other jobs load the machine")
    parser.add_argument("--python", action="append", default=[], metavar="FRAMEWORK=PATH",
                        help="run FRAMEWORK's worker with another interpreter, e.g. "
                             "tensorflow=/opt/tfenv/bin/python (a virtual environment that holds "
                             "it); may be repeated")
    args = parser.parse_args()
    _THREADS[0] = args.threads
    for item in args.python:
        framework, _, path = item.partition("=")
        if framework not in FRAMEWORKS or not path:
            parser.error(f"--python expects FRAMEWORK=PATH with FRAMEWORK one of "
                         f"{', '.join(FRAMEWORKS)}; got {item!r}")
        if not os.path.exists(path):
            parser.error(f"--python {item}: no interpreter at {path}")
        _PYTHONS[framework] = path

    if args.worker:
        result = worker(args.worker, args.phase, args.steps, args.warmup)
        result[f"{args.phase}_cpu_s"] = list(CPU_TIMES)
        print(json.dumps(result))
        return

    train_gflop = 3 * 2 * FORWARD_GMAC_PER_IMAGE * BATCH
    predict_gflop = 2 * FORWARD_GMAC_PER_IMAGE * BATCH
    print(f"machine: {os.cpu_count()} cores, threads {args.threads or 'default'}, "
          f"load average {tuple(round(v, 2) for v in os.getloadavg())} at start; "
          f"batch {BATCH}, {IMAGE}x{IMAGE}, float32, median of {args.steps} x {args.rounds} round(s) after {args.warmup} warm-up")
    if not args.no_import_time:
        warm_import, cold_kernels, warm_kernels = import_and_jit_report()
        print(f"import minidl (warm Numba cache): {warm_import:.2f} s (median of 3); first call of "
              f"every float32 kernel: {cold_kernels:.1f} s compiling (cold cache), "
              f"{warm_kernels:.2f} s loading (warm cache)")
    frameworks = []
    for framework in args.only.split(","):
        framework = framework.strip()
        if framework not in FRAMEWORKS:
            raise SystemExit(f"bench_step.py --only: unknown framework {framework!r}; "
                             f"choose from {', '.join(FRAMEWORKS)}")
        if not importable(framework):
            print(f"note: {framework} skipped ({IMPORTS[framework]} is not importable; "
                  f"see benchmarks/requirements-compare.txt)")
            continue
        frameworks.append(framework)
    # Rounds alternate the frameworks, so a slow minute on a shared machine (other jobs,
    # a noisy neighbour VM) hits them all alike; step times are pooled over the rounds.
    phases = [phase.strip() for phase in args.phases.split(",")]
    if not phases or any(phase not in PHASES for phase in phases):
        parser.error(f"--phases takes a comma-separated subset of {', '.join(PHASES)}, got {args.phases!r}")
    results = {}
    for _ in range(args.rounds):
        for framework in list(frameworks):
            try:
                measured = {}
                for phase in phases:
                    measured.update(run_in_subprocess(framework, phase, args.steps, args.warmup))
            except RuntimeError as error:
                print(f"note: {framework} failed: {error}")
                frameworks.remove(framework)
                results.pop(framework, None)
                continue
            results[framework] = _pooled(results.get(framework), measured)
    if "train" in phases and "predict" in phases:
        print_full_step_table(results, train_gflop, predict_gflop)
    transfer = [phase for phase in ("frozen", "top2") if phase in phases]
    if transfer:
        print_transfer_learning_table(results, transfer)
    for framework, r in results.items():
        print(f"  {framework}: " + ", ".join(f"{phase} {[round(t, 3) for t in r[f'{phase}_s']]}" for phase in phases)
              + (f", {r['version']}" if "version" in r else ""))
    print(f"load average at end: {tuple(round(v, 2) for v in os.getloadavg())}; "
          "cpu s = process CPU seconds of a training step (all threads)")


def print_full_step_table(results, train_gflop, predict_gflop):
    """The full fine-tune and predict, every framework, and minidl's time divided by theirs."""
    header = (f"{'framework':14s} {'train s':>8s} {'cpu s':>6s} {'GFLOP/s':>8s} {'predict s':>9s} {'GFLOP/s':>8s} "
              f"{'RSS built':>9s} {'RSS train':>9s} {'RSS pred':>9s} {'minidl/it train':>15s} {'predict':>7s}")
    print(header)
    print("-" * len(header))
    reference = results.get("minidl")
    for framework, r in results.items():
        train = statistics.median(r["train_s"])
        predict = statistics.median(r["predict_s"])
        # The target is minidl's time / the framework's time <= 1.0.
        train_ratio = statistics.median(reference["train_s"]) / train if reference else float("nan")
        predict_ratio = statistics.median(reference["predict_s"]) / predict if reference else float("nan")
        cpu = statistics.median(r["train_cpu_s"])
        print(f"{framework:14s} {train:8.3f} {cpu:6.2f} {train_gflop / train:8.1f} {predict:9.3f} "
              f"{predict_gflop / predict:8.1f} {r['rss_built_gb']:8.2f}G {r['rss_train_gb']:8.2f}G "
              f"{r['rss_predict_gb']:8.2f}G {train_ratio:14.2f}x {predict_ratio:6.2f}x")


def print_transfer_learning_table(results, phases):
    """The frozen-base and partly frozen steps: times, peak RSS, minidl / the framework."""
    reference = results.get("minidl")
    header = f"{'framework':14s}" + "".join(f" {phase + ' s':>9s} {'RSS':>6s} {'minidl/it':>9s}" for phase in phases)
    if "predict_s" in next(iter(results.values()), {}):
        header += f" {'frozen/predict':>14s}"
    print("\ntransfer learning (frozen: base.trainable = False; top2: layers[:249] frozen, SGD momentum)")
    print(header)
    print("-" * len(header))
    for framework, r in results.items():
        line = f"{framework:14s}"
        for phase in phases:
            seconds = statistics.median(r[f"{phase}_s"])
            ratio = statistics.median(reference[f"{phase}_s"]) / seconds if reference else float("nan")
            line += f" {seconds:9.3f} {r[f'rss_{phase}_gb']:5.2f}G {ratio:8.2f}x"
        if "predict_s" in r and "frozen" in phases:
            line += f" {statistics.median(r['frozen_s']) / statistics.median(r['predict_s']):13.2f}x"
        print(line)


if __name__ == "__main__":
    main()

"""Benchmark minidl's kernels on every distinct InceptionV3 shape (batch 5, 299x299, float32).

For each convolution shape: forward, grad-input and grad-weight time on the Numba path,
the GFLOP/s they reach, and how they compare with the bare BLAS matrix products on the
same GEMM shapes (ratio 1.0 = im2col/col2im cost nothing). Pooling and batch-norm shapes
follow. Rows are sorted by the time a whole training step spends on them (time x count).

Usage::

    PYTHONPATH=. python benchmarks/bench_kernels.py --quick          # a few shapes, 1 repeat
    PYTHONPATH=. python benchmarks/bench_kernels.py --repeats 3      # every shape
    PYTHONPATH=. python benchmarks/bench_kernels.py --reference      # also time the NumPy path

Shapes come from the InceptionV3 layer sequence in the minidl/keras_semantics.md §4.2.
"""
import argparse
import collections
import os
import platform
import time

import numpy as np

from minidl import config, kernels
from minidl.kernels.fast import conv as fast_conv

BATCH = 5


def inception_v3_convolutions():
    """(input size, (KH, KW), stride, padding, C_in, C_out) for all 94 convolutions."""
    convs = [(299, (3, 3), 2, "valid", 3, 32), (149, (3, 3), 1, "valid", 32, 32),
             (147, (3, 3), 1, "same", 32, 64), (73, (1, 1), 1, "valid", 64, 80),
             (73, (3, 3), 1, "valid", 80, 192)]
    for channels_in, pool_filters in ((192, 32), (256, 64), (288, 64)):  # mixed0..2 at 35x35
        convs += [(35, (1, 1), 1, "same", channels_in, 64), (35, (1, 1), 1, "same", channels_in, 48),
                  (35, (5, 5), 1, "same", 48, 64), (35, (1, 1), 1, "same", channels_in, 64),
                  (35, (3, 3), 1, "same", 64, 96), (35, (3, 3), 1, "same", 96, 96),
                  (35, (1, 1), 1, "same", channels_in, pool_filters)]
    convs += [(35, (3, 3), 2, "valid", 288, 384), (35, (1, 1), 1, "same", 288, 64),  # mixed3
              (35, (3, 3), 1, "same", 64, 96), (35, (3, 3), 2, "valid", 96, 96)]
    for c in (128, 160, 160, 192):  # mixed4..7 at 17x17
        convs += [(17, (1, 1), 1, "same", 768, 192), (17, (1, 1), 1, "same", 768, c),
                  (17, (1, 7), 1, "same", c, c), (17, (7, 1), 1, "same", c, 192),
                  (17, (1, 1), 1, "same", 768, c), (17, (7, 1), 1, "same", c, c),
                  (17, (1, 7), 1, "same", c, c), (17, (7, 1), 1, "same", c, c),
                  (17, (1, 7), 1, "same", c, 192), (17, (1, 1), 1, "same", 768, 192)]
    convs += [(17, (1, 1), 1, "same", 768, 192), (17, (3, 3), 2, "valid", 192, 320),  # mixed8
              (17, (1, 1), 1, "same", 768, 192), (17, (1, 7), 1, "same", 192, 192),
              (17, (7, 1), 1, "same", 192, 192), (17, (3, 3), 2, "valid", 192, 192)]
    for channels_in in (1280, 2048):  # mixed9, mixed10 at 8x8
        convs += [(8, (1, 1), 1, "same", channels_in, 320), (8, (1, 1), 1, "same", channels_in, 384),
                  (8, (1, 3), 1, "same", 384, 384), (8, (3, 1), 1, "same", 384, 384),
                  (8, (1, 1), 1, "same", channels_in, 448), (8, (3, 3), 1, "same", 448, 384),
                  (8, (1, 3), 1, "same", 384, 384), (8, (3, 1), 1, "same", 384, 384),
                  (8, (1, 1), 1, "same", channels_in, 192)]
    assert len(convs) == 94, len(convs)
    return convs


POOLS = [  # (kind, input size, channels, pool, stride, padding, count)
    ("max", 147, 64, 3, 2, "valid", 1), ("max", 71, 192, 3, 2, "valid", 1),
    ("max", 35, 288, 3, 2, "valid", 1), ("max", 17, 768, 3, 2, "valid", 1),
    ("avg", 35, 192, 3, 1, "same", 1), ("avg", 35, 256, 3, 1, "same", 1),
    ("avg", 35, 288, 3, 1, "same", 1), ("avg", 17, 768, 3, 1, "same", 4),
    ("avg", 8, 1280, 3, 1, "same", 1), ("avg", 8, 2048, 3, 1, "same", 1),
]


def best_time(function, repeats):
    """Best wall time in ms over ``repeats`` runs, after one warm-up (JIT, page faults)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def machine_description():
    blas = "unknown"
    try:
        config_info = np.show_config(mode="dicts")
        blas_info = config_info["Build Dependencies"]["blas"]
        blas = f"{blas_info.get('name')} {blas_info.get('version', '')}"
    except Exception:  # older NumPy: no dict mode
        pass
    import numba
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"numba threads {numba.get_num_threads()}, numpy {np.__version__} ({blas}), "
            f"numba {numba.__version__}")


def gemm_peak(repeats):
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    milliseconds = best_time(lambda: a @ a, repeats)
    return 2 * 2048**3 / milliseconds / 1e6


def bench_conv(shape_key, repeats, with_reference):
    size, kernel_size, stride, padding, channels_in, channels_out = shape_key
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, size, size, channels_in)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (channels_in, channels_out)).astype(np.float32)
    out_h, out_w, pads = kernels.conv_geometry(x.shape, kernel_size, (stride, stride), padding)
    strides = (stride, stride)
    grad_output = rng.standard_normal((BATCH, out_h, out_w, channels_out)).astype(np.float32)
    rows, depth = BATCH * out_h * out_w, kernel_size[0] * kernel_size[1] * channels_in
    kernel_2d = kernel.reshape(depth, channels_out)
    grad_2d = grad_output.reshape(rows, channels_out)

    def backward(need_input_grad):
        if need_input_grad:
            return best_time(lambda: kernels.conv2d_backward(grad_output, x, kernel, strides, pads), repeats)
        with fast_conv.without_input_gradient():     # only the engine can skip it
            return best_time(lambda: fast_conv.conv2d_backward(grad_output, x, kernel, strides, pads), repeats)

    result = {}
    paths = ["numba"] + (["reference"] if with_reference else [])
    for path in paths:
        config.set_kernel_path(path)
        forward = best_time(lambda: kernels.conv2d_forward(x, kernel, strides, pads), repeats)
        full = backward(need_input_grad=True)
        if path == "numba":
            # The input gradient (grad_cols products + col2im, chunk by chunk) is what a full
            # backward adds to the grad_weight-only one.
            grad_weight = backward(need_input_grad=False)
            grad_input = max(full - grad_weight, 0.0)
        else:                                        # the reference computes both together
            grad_weight, grad_input = full, 0.0
        result[path] = (forward, grad_input, grad_weight)
    config.set_kernel_path("numba")
    cols = rng.standard_normal((rows, depth)).astype(np.float32)  # same GEMM shapes, no im2col
    gemm = (best_time(lambda: cols @ kernel_2d, repeats) + best_time(lambda: grad_2d @ kernel_2d.T, repeats)
            + best_time(lambda: cols.T @ grad_2d, repeats))
    flops = 3 * 2 * rows * depth * channels_out
    return result, gemm, flops


def bench_pool(kind, size, channels, pool, stride, padding, repeats, path):
    config.set_kernel_path(path)
    x = np.random.default_rng(0).standard_normal((BATCH, size, size, channels)).astype(np.float32)
    _, _, pads = kernels.conv_geometry(x.shape, (pool, pool), (stride, stride), padding)
    window, strides = (pool, pool), (stride, stride)
    if kind == "max":
        y, argmax = kernels.max_pool_forward(x, window, strides, pads)
        times = (best_time(lambda: kernels.max_pool_forward(x, window, strides, pads), repeats),
                 best_time(lambda: kernels.max_pool_backward(y, argmax, x.shape), repeats))
    else:
        y = kernels.avg_pool_forward(x, window, strides, pads)
        times = (best_time(lambda: kernels.avg_pool_forward(x, window, strides, pads), repeats),
                 best_time(lambda: kernels.avg_pool_backward(y, x.shape, window, strides, pads), repeats))
    config.set_kernel_path("numba")
    return times


def bench_batchnorm(shape, repeats, path):
    config.set_kernel_path(path)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    beta = np.zeros(shape[-1], np.float32)
    _, mean, _, inv_std = kernels.batchnorm_train_forward(x, None, beta, 1e-3)
    times = (best_time(lambda: kernels.batchnorm_train_forward(x, None, beta, 1e-3), repeats),
             best_time(lambda: kernels.batchnorm_backward(x, x, mean, inv_std, None), repeats))
    config.set_kernel_path("numba")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few shapes, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per kernel (best is kept)")
    parser.add_argument("--reference", action="store_true", help="also time the NumPy reference path")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)

    print(f"machine: {machine_description()}")
    print(f"float32 GEMM 2048^3: {gemm_peak(max(repeats, 2)):.1f} GFLOP/s   batch {BATCH}, repeats {repeats}")

    conv_counts = collections.Counter(inception_v3_convolutions())
    conv_shapes = list(conv_counts)
    pools = POOLS
    if args.quick:
        conv_shapes = [(147, (3, 3), 1, "same", 32, 64), (73, (1, 1), 1, "valid", 64, 80),
                       (35, (5, 5), 1, "same", 48, 64), (17, (1, 7), 1, "same", 160, 160),
                       (17, (3, 3), 2, "valid", 192, 320), (8, (3, 3), 1, "same", 448, 384)]
        pools = [POOLS[0], POOLS[6]]

    rows = []
    for key in conv_shapes:
        size, kernel_size, stride, padding, channels_in, channels_out = key
        result, gemm, flops = bench_conv(key, repeats, args.reference)
        forward, grad_input, grad_weight = result["numba"]
        total = forward + grad_input + grad_weight
        reference = sum(result["reference"]) if "reference" in result else float("nan")
        name = (f"conv {kernel_size[0]}x{kernel_size[1]}/{stride} {padding:5s} "
                f"{size}x{size} {channels_in}->{channels_out}")
        rows.append((name, conv_counts[key], forward, grad_input, grad_weight, total,
                     flops / total / 1e6, total / gemm, reference))

    bn_counts = collections.Counter()
    for size, kernel_size, stride, padding, _, channels_out in inception_v3_convolutions():
        out, _, _ = kernels.output_size_and_padding(size, kernel_size[0], stride, padding)
        bn_counts[(BATCH, out, out, channels_out)] += 1
    bn_shapes = list(bn_counts)
    if args.quick:
        bn_shapes = [(5, 147, 147, 64), (5, 35, 35, 288), (5, 8, 8, 2048)]
    for shape in bn_shapes:
        forward, backward = bench_batchnorm(shape, repeats, "numba")
        reference = sum(bench_batchnorm(shape, repeats, "reference"))
        rows.append((f"batchnorm {shape[1]}x{shape[2]}x{shape[3]}", bn_counts.get(shape, 1),
                     forward, backward, float("nan"), forward + backward, float("nan"),
                     float("nan"), reference))
    for kind, size, channels, pool, stride, padding, count in pools:
        forward, backward = bench_pool(kind, size, channels, pool, stride, padding, repeats, "numba")
        reference = sum(bench_pool(kind, size, channels, pool, stride, padding, 1, "reference"))
        rows.append((f"{kind}pool {pool}x{pool}/{stride} {padding:5s} {size}x{size}x{channels}", count,
                     forward, backward, float("nan"), forward + backward, float("nan"),
                     float("nan"), reference))

    rows.sort(key=lambda row: row[1] * row[5], reverse=True)
    header = (f"{'kernel (numba path, float32)':44s} {'count':>5s} {'fwd ms':>8s} {'grad_in':>8s} "
              f"{'grad_w':>8s} {'sum ms':>8s} {'GFLOP/s':>8s} {'vs @':>6s} {'x count':>8s} {'ref ms':>8s}")
    print(header)
    print("-" * len(header))
    grand_total = 0.0
    for name, count, forward, grad_input, grad_weight, total, gflops, ratio, reference in rows:
        grand_total += count * total
        print(f"{name:44s} {count:5d} {forward:8.2f} {grad_input:8.2f} {grad_weight:8.2f} {total:8.2f} "
              f"{gflops:8.1f} {ratio:6.2f} {count * total:8.1f} {reference:8.2f}")
    print("-" * len(header))
    print(f"total per training step over the listed shapes: {grand_total:.0f} ms"
          + ("  (quick mode: a subset of shapes)" if args.quick else ""))
    print("'vs @' = (fwd + grad_in + grad_w) / the three bare BLAS products of the same shapes; "
          "batchnorm/pool: grad_in column = backward; 'ref ms' = sum on the NumPy reference path "
          "(conv only with --reference).")


if __name__ == "__main__":
    main()

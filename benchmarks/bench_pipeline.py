"""Images/second of the workshop's input pipeline: load + resize(299) + augment + rescale.

Runs ``flow_from_directory`` on the real TRAIN folder with the workshop's training
augmentation (rescale 1/255, shear 0.2, zoom 0.2, rotation 20, width/height shift 0.2,
horizontal flip), batch 5, and reports images/second for:

* load + resize only (no augmentation),
* load + augment with the Numba warp and with the NumPy reference warp,
* the Numba pipeline through ``prefetch`` with 1 and 2 worker threads.

Compare the numbers with the training step's images/second (benchmarks for the
model): if the pipeline is faster, prefetching hides it completely.

Usage::

    python benchmarks/bench_pipeline.py [--data ../shared/data/Open_I_abd_vs_CXRs/TRAIN] [--passes 2]
"""
import argparse
import contextlib
import io
import time
from pathlib import Path

from minidl import config
from minidl.preprocessing.image import ImageDataGenerator, prefetch

WORKSHOP_AUGMENTATION = dict(rescale=1. / 255, shear_range=0.2, zoom_range=0.2,
                             rotation_range=20, width_shift_range=0.2,
                             height_shift_range=0.2, horizontal_flip=True)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Open_I_abd_vs_CXRs" / "TRAIN"


def make_iterator(data, augment):
    datagen = ImageDataGenerator(**(WORKSHOP_AUGMENTATION if augment else {"rescale": 1. / 255}))
    with contextlib.redirect_stdout(io.StringIO()):  # silence "Found N images ..."
        return datagen.flow_from_directory(data, target_size=(299, 299), batch_size=5,
                                           class_mode="binary", seed=0)


def images_per_second(iterator, batches, workers=None):
    """Time ``batches`` batches (after one warm-up batch that also compiles Numba)."""
    if workers is None:
        next(iterator)
        start = time.perf_counter()
        images = sum(len(next(iterator)[0]) for _ in range(batches))
        return images / (time.perf_counter() - start)
    with prefetch(iterator, max_queue_size=10, workers=workers) as stream:
        next(stream)
        start = time.perf_counter()
        images = sum(len(next(stream)[0]) for _ in range(batches))
        return images / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="class-folder directory (default: the workshop TRAIN folder)")
    parser.add_argument("--passes", type=int, default=2, help="passes over the data to time")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"bench_pipeline: data directory '{args.data}' not found; "
                         "pass --data DIR (one sub-folder per class)")
    previous = config.kernel_path()
    rows = []
    try:
        config.set_kernel_path("numba")
        probe = make_iterator(args.data, augment=False)
        batches = args.passes * len(probe)
        rows.append(("load + resize 299 (no augmentation)", images_per_second(probe, batches)))
        for path in ("numba", "reference"):
            config.set_kernel_path(path)
            rows.append((f"load + augment, {path} warp",
                         images_per_second(make_iterator(args.data, True), batches)))
        config.set_kernel_path("numba")
        for workers in (1, 2):
            rows.append((f"load + augment, numba warp, prefetch workers={workers}",
                         images_per_second(make_iterator(args.data, True), batches, workers)))
    finally:
        config.set_kernel_path(previous)
    print(f"data: {args.data}  ({probe.samples} images, batch 5, 299x299, {batches} batches timed)")
    print(f"{'pipeline':<52} {'images/s':>10}")
    print("-" * 63)
    for name, rate in rows:
        print(f"{name:<52} {rate:>10.1f}")


if __name__ == "__main__":
    main()

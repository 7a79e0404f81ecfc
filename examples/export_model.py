"""Take the workshop model elsewhere: save it for Keras 3 (``.keras``) and for serving (ONNX).

Trains the workshop's model briefly (or loads one you saved), then writes

* ``model.keras`` -- Keras 3's own file: ``keras.saving.load_model("model.keras")`` gives
  the same network with the same weights, compiled, ready to train on (TensorFlow, JAX or
  PyTorch backend);
* ``model.onnx`` -- an ONNX graph that onnxruntime (or any ONNX runtime: a hospital's
  inference server, a phone, a browser) runs without Python or minidl,

and shows onnxruntime's prediction for ``TEST/chest2.png`` next to minidl's.

    python examples/export_model.py --data ../shared/data/Open_I_abd_vs_CXRs --quick
    python examples/export_model.py --model runs/workshop-20240101-120000/model.h5
    pip install -e ".[onnx]"          # onnx and onnxruntime, for the ONNX part

``--data`` is found as examples/workshop.py finds it: the argument, ``$MINIDL_DATA``,
the cache ``~/.minidl/datasets``, else the download.
"""
import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from minidl.datasets import DatasetUnavailableError, find_dataset
from minidl.models import load_model
from minidl.preprocessing import image
from minidl.preprocessing.image import ImageDataGenerator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workshop import CLASS_NAMES, build_model  # noqa: E402  (the workshop's own model)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder holding TRAIN/, VAL/ and TEST/ (default: $MINIDL_DATA, "
                                       "the cache ~/.minidl/datasets, else download)")
    parser.add_argument("--model", help="a model saved with model.save (.h5 or .keras); default: train one briefly")
    parser.add_argument("--weights", default="none",
                        help="InceptionV3's starting weights when training: 'none' (default) or 'imagenet'")
    parser.add_argument("--image-size", type=int, help="height = width when training (default 299, 107 with --quick)")
    parser.add_argument("--steps", type=int,
                        help="training steps of 5 images (default 13: one epoch; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="107x107 images, 2 training steps")
    parser.add_argument("--out", help="output folder (default runs/export-<timestamp>)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.image_size = args.image_size or (107 if args.quick else 299)
    args.steps = args.steps or (2 if args.quick else 13)
    return args


def trained_model(args, data):
    """The workshop's model after a few training steps (enough to show the export, not to learn)."""
    model = build_model(args.weights, args.image_size, freeze_base=False, seed=args.seed)
    generator = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
    batches = generator.flow_from_directory(data / "TRAIN", target_size=(args.image_size, args.image_size),
                                            batch_size=5, class_mode="binary", seed=args.seed)
    print(f"Training {args.steps} step(s) of 5 images at {args.image_size}x{args.image_size} ...")
    model.fit(batches, steps_per_epoch=args.steps, epochs=1, workers=0)
    return model


def onnxruntime_prediction(onnx_path, x):
    """onnxruntime's output for ``x``, and its time; None if onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    started = time.perf_counter()
    (scores,) = session.run(None, {input_name: x})
    return scores, time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    try:
        data = find_dataset(args.data)
    except (DatasetUnavailableError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 3
    out = Path(args.out or f"runs/export-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)

    model = load_model(args.model) if args.model else trained_model(args, data)
    size = model.input_shape[1:3]

    keras_path = out / "model.keras"
    model.save(keras_path)
    print(f"\nSaved {keras_path} ({keras_path.stat().st_size / 1e6:.1f} MB) -- in Keras 3:\n"
          f"    model = keras.saving.load_model('{keras_path}')")
    try:
        onnx_path = model.export(out / "model.onnx", format="onnx")
    except ImportError as error:
        print(f"\nNo ONNX file: {error}")
        onnx_path = None

    # ---- TEST/chest2.png, as the workshop feeds it: resized, scaled to [0, 1]
    picture = data / "TEST" / "chest2.png"
    x = np.expand_dims(image.img_to_array(image.load_img(picture, target_size=size)), axis=0) / 255.0
    x = x.astype("float32")
    started = time.perf_counter()
    minidl_score = float(model.predict(x)[0, 0])
    minidl_time = time.perf_counter() - started
    class_names = list(CLASS_NAMES.values())            # class index 0: chest, 1: abdomen
    print(f"\n{picture.name}: score = P({class_names[1]})")
    print(f"  minidl       {minidl_score:.6f}  -> {class_names[minidl_score >= 0.5]}  ({minidl_time * 1000:.0f} ms)")
    result = onnxruntime_prediction(onnx_path, x) if onnx_path else None
    if result is None:
        print("  onnxruntime  (not installed: pip install -e '.[onnx]')")
        return 0
    scores, onnx_time = result
    onnx_score = float(scores[0, 0])
    print(f"  onnxruntime  {onnx_score:.6f}  -> {class_names[onnx_score >= 0.5]}  ({onnx_time * 1000:.0f} ms)")
    print(f"  relative difference {abs(onnx_score - minidl_score) / abs(minidl_score):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

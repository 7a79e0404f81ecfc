"""Hello World Deep Learning in Medical Imaging -- the workshop, end to end, with minidl.

Fine-tune InceptionV3 (ImageNet weights) to tell chest from abdominal
radiographs, exactly as the original Keras 2 notebook does (Lakhani et al.,
J Digit Imaging 2018), then look at the result honestly: training curves,
a confusion matrix and a ROC curve on the validation images, predictions on
the two TEST images and Grad-CAM pictures of what the network looked at.

    python examples/workshop.py                        # the workshop's recipe (20 epochs, 299x299)
    python examples/workshop.py --weights none         # no ImageNet weights: train from scratch
    python examples/workshop.py --quick                # a smoke test, well under a minute
    python examples/workshop.py --resume runs/workshop-20240101-120000

Everything lands in ``--out`` (default ``runs/workshop-<timestamp>``); open
``report.md`` there. Ctrl-C stops cleanly: the model is saved and
``--resume`` continues from the last completed epoch.
"""
import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import matplotlib
matplotlib.use("Agg")  # files only: works without a display
import numpy as np

from minidl import applications
from minidl.callbacks import Callback, RecalibrateBatchNorm
from minidl.datasets import DatasetUnavailableError, find_dataset
from minidl.layers import Dense, Dropout, GlobalAveragePooling2D
from minidl.models import Model, Sequential, load_model
from minidl.optimizers import SGD, Adam
from minidl.preprocessing import image
from minidl.preprocessing.image import ImageDataGenerator
from minidl.weights import WeightsUnavailableError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workshop_run as run  # noqa: E402  (the bookkeeping: seeds, checkpoints, report)

# The two class folders of the workshop's dataset and how the notebook names them.
CLASS_NAMES = {"openI_CXR": "Chest X-ray", "openI_abd_xray": "Abd X-ray"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder holding TRAIN/, VAL/ and TEST/ (default: $MINIDL_DATA, "
                                       "the cache ~/.minidl/datasets, else download)")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (default), 'none' (random initialisation) or a weights file")
    parser.add_argument("--epochs", type=int, help="default 20 (2 with --quick)")
    parser.add_argument("--batch-size", type=int, help="default 5")
    parser.add_argument("--image-size", type=int, help="height = width, >= 75; default 299 (107 with --quick)")
    parser.add_argument("--steps", type=int, help="training steps per epoch (default: train images // batch)")
    parser.add_argument("--validation-steps", type=int, help="default: validation images // batch")
    parser.add_argument("--freeze-base", action="store_true", help="train only the new head")
    parser.add_argument("--fine-tune-from", metavar="LAYER",
                        help="Keras's two-phase transfer-learning recipe: first train only the head "
                             "(--head-epochs), then every layer from LAYER on -- a name in model.layers or "
                             "an index, e.g. 249: the top two Inception blocks -- with SGD(lr=1e-4, "
                             "momentum=0.9); the layers before it stay frozen")
    parser.add_argument("--head-epochs", type=int,
                        help="with --fine-tune-from: epochs of the head-only phase (default: half of --epochs)")
    parser.add_argument("--augment-validation", action="store_true",
                        help="augment the validation images, as the original notebook did by mistake")
    parser.add_argument("--seed", type=int, help="same seed, same run (default: a random seed, printed)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 107x107 images, 2 epochs of 3 steps")
    parser.add_argument("--out", help="output folder (default runs/workshop-<timestamp>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    parser.add_argument("--gradcam-layer", default="mixed10", help="layer explained by Grad-CAM")
    parser.add_argument("--bn-recalibration", choices=("auto", "on", "off"), default="auto",
                        help="re-estimate batch-norm statistics from the training images before each "
                             "validation (not in Keras; 'auto' = on with --weights none, off otherwise)")
    # For tests: raise KeyboardInterrupt at EPOCH:STEP (1-based), exactly as Ctrl-C would.
    parser.add_argument("--simulate-interrupt", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.epochs_given = args.epochs is not None       # --resume keeps the run's own unless given
    quick = args.quick
    defaults = {"epochs": 2 if quick else 20, "batch_size": 5, "image_size": 107 if quick else 299}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.image_size < 75:
        parser.error(f"--image-size must be at least 75 (InceptionV3's minimum), got {args.image_size}")
    if quick:
        args.steps = args.steps or 3
        args.validation_steps = args.validation_steps or 2
    if args.fine_tune_from is not None and args.freeze_base:
        parser.error("--freeze-base trains only the head; --fine-tune-from trains the head, then more: "
                     "give one of them")
    if args.fine_tune_from is not None and args.head_epochs is None:
        args.head_epochs = max(1, args.epochs // 2)
    return args


# ------------------------------------------------------------------------------ the model
def build_model(weights, image_size, freeze_base, seed):
    """InceptionV3 without its ImageNet classifier, plus the workshop's small head (only the
    head trainable with ``freeze_base``)."""
    weights = None if str(weights).lower() == "none" else weights
    base_model = applications.InceptionV3(weights=weights, include_top=False,
                                          input_shape=(image_size, image_size, 3))
    model_top = Sequential()
    model_top.add(GlobalAveragePooling2D(input_shape=base_model.output_shape[1:], data_format=None))
    model_top.add(Dense(256, activation="relu"))
    model_top.add(Dropout(0.5, seed=seed))
    model_top.add(Dense(1, activation="sigmoid"))
    model = Model(inputs=base_model.input, outputs=model_top(base_model.output))
    if freeze_base:
        for layer in base_model.layers:
            layer.trainable = False
    model.compile(optimizer=Adam(lr=0.0001, beta_1=0.9, beta_2=0.999, epsilon=1e-08, decay=0.0),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


class EpochTimeEstimate(Callback):
    """Prints the estimated time of one epoch once the first few steps have run."""

    def __init__(self, after_steps=3):
        super().__init__()
        self.after_steps = after_steps
        self.done = False

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = time.time()
        if batch == 1:
            self.second_start = time.time()     # step 1 pays one-off costs (JIT, caches)

    def on_train_batch_end(self, batch, logs=None):
        steps = self.params["steps"]
        if self.done or batch + 1 < min(self.after_steps, steps):
            return
        self.done = True
        measured = batch if batch >= 1 else 1
        per_step = (time.time() - self.second_start) / batch if batch >= 1 else time.time() - self.start
        print(f"\n[estimate] about {per_step:.1f} s per training step over {measured} step(s): "
              f"~{per_step * steps:.0f} s per epoch of {steps} steps, plus validation", flush=True)


def fine_tune_from(model, layer):
    """Keras's second phase: the layers before ``layer`` (a name or an index in
    ``model.layers``) stay frozen, the rest train, with SGD(lr=1e-4, momentum=0.9) --
    compiled again, because in Keras 2 ``trainable`` takes effect at ``compile()``."""
    names = [each.name for each in model.layers]
    if str(layer).isdigit() and int(layer) < len(names):
        first = int(layer)
    elif layer in names:
        first = names.index(layer)
    else:
        raise SystemExit(f"--fine-tune-from {layer!r}: give a layer name from model.layers or an index below "
                         f"{len(names)} (249: where the top two Inception blocks begin)")
    for index, each in enumerate(model.layers):
        each.trainable = index >= first
    model.compile(optimizer=SGD(learning_rate=1e-4, momentum=0.9), loss="binary_crossentropy",
                  metrics=["accuracy"])
    trainable = sum(p.value.size for p in model.trainable_weights)
    print(f"Fine-tuning from layer {first} ('{names[first]}') on: {trainable:,} trainable parameters, "
          f"SGD(lr=1e-4, momentum=0.9)")


def run_epochs(model, args, state, out, first_epoch, train_generator, validation_generator,
               steps_per_epoch, validation_steps, callbacks):
    """One fit() per epoch, so that every epoch ends with a checkpoint."""
    for epoch in range(first_epoch, args.epochs):
        if args.fine_tune_from is not None and epoch == args.head_epochs:
            fine_tune_from(model, args.fine_tune_from)       # the head-only phase is over
        run.seed_epoch(model, [train_generator, validation_generator], args.seed, epoch,
                       [steps_per_epoch, validation_steps])
        epoch_history = model.fit(
            train_generator, steps_per_epoch=steps_per_epoch, epochs=args.epochs, initial_epoch=epoch,
            validation_data=validation_generator, validation_steps=validation_steps,
            callbacks=callbacks + [run.StopAfterThisEpoch()],
            workers=0)   # workers=0: batches are made in order, so the same seed repeats the run
        run.end_of_epoch(model, out, state, epoch_history.history)


def main(argv=None):
    started = time.time()
    args = parse_args(argv)
    if args.resume:
        state = run.load_state(args.resume)
        args = run.restore_args(args, state)
        out = Path(args.resume)
    else:
        state = None
        out = Path(args.out or f"runs/workshop-{datetime.now():%Y%m%d-%H%M%S}")
        out.mkdir(parents=True, exist_ok=True)
    if args.seed is None:
        args.seed = int(np.random.SeedSequence().entropy % (2 ** 31))
    run.seed_everything(args.seed)
    print(f"Output folder: {out}   seed: {args.seed}")

    # ---- the data: TRAIN/ and VAL/ with one sub-folder per class, TEST/ with loose images
    try:
        data = find_dataset(args.data)
    except (DatasetUnavailableError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 3
    train_data_dir, validation_data_dir = data / "TRAIN", data / "VAL"
    img_width = img_height = args.image_size
    batch_size = args.batch_size

    train_datagen = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2, rotation_range=20,
                                       width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True)
    # The original notebook augmented the validation images too (train_datagen); a fair
    # validation only rescales them. --augment-validation reproduces the original.
    test_datagen = ImageDataGenerator(rescale=1. / 255)
    validation_datagen = train_datagen if args.augment_validation else test_datagen
    train_generator = train_datagen.flow_from_directory(
        train_data_dir, target_size=(img_height, img_width), batch_size=batch_size, class_mode="binary",
        seed=args.seed)
    validation_generator = validation_datagen.flow_from_directory(
        validation_data_dir, target_size=(img_height, img_width), batch_size=batch_size, class_mode="binary",
        seed=args.seed + 1)
    class_names = run.class_names(train_generator.class_indices, CLASS_NAMES)
    steps_per_epoch = args.steps or max(1, train_generator.samples // batch_size)
    validation_steps = args.validation_steps or max(1, validation_generator.samples // batch_size)
    print(f"Classes (class_indices): {train_generator.class_indices} -> the sigmoid is "
          f"P({class_names[1]})")

    figure = run.augmentation_figure(train_datagen, train_generator, (img_height, img_width), args.seed)
    run.save_figure(figure, out / "augmentations.png")

    # ---- the model: ImageNet InceptionV3 + a new head, every layer trainable
    try:
        if state and state["epochs_completed"] > 0:
            model = load_model(out / run.LAST_CHECKPOINT)   # weights *and* Adam's moments
            print(f"Resuming after epoch {state['epochs_completed']} from {out / run.LAST_CHECKPOINT}")
        else:
            model = build_model(args.weights, args.image_size, args.freeze_base or args.fine_tune_from is not None,
                                args.seed)
    except WeightsUnavailableError as error:
        print(f"\n{error}\n\nThe ImageNet weights are not available. To continue without them "
              f"(training InceptionV3 from scratch, which needs more epochs), run again with "
              f"--weights none, e.g.\n    python {sys.argv[0]} --weights none "
              f"{'--quick ' if args.quick else ''}", file=sys.stderr)
        return 2
    if args.bn_recalibration == "auto":
        args.bn_recalibration = "on" if args.weights == "none" else "off"
    trainable = sum(p.value.size for p in model.trainable_weights)
    print(f"Model: {len(model.layers)} layers, {model.count_params():,} parameters "
          f"({trainable:,} trainable)")

    # ---- training, one epoch at a time so that every epoch ends with a checkpoint
    history = state["history"] if state else {}
    best = state.get("best_val_loss") if state else None
    first_epoch = state["epochs_completed"] if state else 0
    state = run.new_state(args, history, first_epoch, best)
    run.write_state(out, state)
    callbacks = [EpochTimeEstimate()] + run.interrupt_callbacks(args.simulate_interrupt)
    if args.bn_recalibration == "on":
        print("Batch-norm statistics are re-estimated from the training images before each validation "
              "(--bn-recalibration; not part of Keras).")
        recalibration_batches = test_datagen.flow_from_directory(
            train_data_dir, target_size=(img_height, img_width), batch_size=batch_size, class_mode=None,
            shuffle=False)
        callbacks.append(RecalibrateBatchNorm(recalibration_batches))
    training_started = time.time()
    ctrl_c = run.CtrlCBetweenSteps()
    callbacks.append(ctrl_c)
    try:
        with ctrl_c:
            run_epochs(model, args, state, out, first_epoch, train_generator, validation_generator,
                       steps_per_epoch, validation_steps, callbacks)
    except KeyboardInterrupt:
        run.save_interrupted(model, out, state)
        print(f"\nInterrupted. The model is saved in {out / run.INTERRUPTED_CHECKPOINT}; continue from "
              f"the last completed epoch ({state['epochs_completed']}) with:\n"
              f"    python {sys.argv[0]} --resume {out}", file=sys.stderr)
        return 130
    training_seconds = time.time() - training_started
    history = state["history"]
    run.save_figure(run.training_curves_figure(history), out / "training_curves.png")

    # ---- predictions on the TEST images, in the workshop's words
    print(f"\nTEST predictions (score = P({class_names[1]}), class index 1):")
    predictions = {}
    for img_path in sorted((data / "TEST").glob("*.png")):
        img = image.load_img(img_path, target_size=(img_width, img_height))
        x = np.expand_dims(image.img_to_array(img), axis=0) * 1. / 255
        score = model.predict(x)
        label = class_names[1] if score[0, 0] >= 0.5 else class_names[0]
        print(f"{img_path.name}:")
        with np.printoptions(precision=4):
            print("Predicted:", score, label)
        predictions[img_path.name] = {"score": float(score[0, 0]), "label": label}
        run.save_gradcam(model, x, img, args.gradcam_layer, img_path, label, score, out)

    # ---- an honest evaluation on the validation images (no augmentation, every image once)
    evaluation = run.evaluate_validation(model, test_datagen, validation_data_dir, (img_height, img_width),
                                         batch_size, class_names, out)
    total_seconds = time.time() - started
    run.write_report(out, args, state, history, predictions, evaluation, class_names,
                     training_seconds, total_seconds, model)
    print(f"\nValidation: accuracy {evaluation['accuracy']:.3f}, AUC {evaluation['auc']:.3f}; "
          f"report: {out / 'report.md'}")
    print(f"Total wall time: {total_seconds:.1f} s (training {training_seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

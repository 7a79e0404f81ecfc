"""Bookkeeping for ``examples/workshop.py``: seeds, checkpoints, resuming, figures, the report.

Kept out of the script so that the script reads like the workshop's notebook.

The files of a run folder::

    state.json                  where the run stands (epochs done, history, arguments, seed)
    checkpoint_last.h5          model + Adam state after the last completed epoch (resume)
    best_model.h5               weights with the lowest val_loss so far (model.load_weights)
    checkpoint_interrupted.h5   the model at the moment of Ctrl-C (mid-epoch)
    history.json / history.csv  one value per epoch: loss, accuracy, val_loss, val_accuracy
    training_curves.png, augmentations.png, confusion_matrix.png, roc_curve.png,
    gradcam_<image>.png, evaluation.json, report.md

Every file is written to a temporary name and renamed into place
(:func:`minidl.utils.atomic_write`), so an interruption never corrupts one.

Why one ``fit`` call per epoch with reseeding: a resumed run must repeat the
uninterrupted run exactly. Every random draw of epoch e -- the batch order, the
shuffle and the augmentation of each batch (NumPy's global RNG, reseeded by
the generators with ``seed + total_batches_seen``), the dropout masks -- is
derived from (seed, e) at the start of the epoch, so epoch e does not depend
on what happened in this process before it.
"""
import csv
import io
import json
import random
import signal
import sys

import numpy as np

import minidl.initializers
from minidl.callbacks import Callback
from minidl.evaluation import auc, confusion_matrix, roc_curve
from minidl.layers import Dropout
from minidl.plotting.evaluation_plots import plot_confusion_matrix, plot_gradcam, plot_roc_curve
from minidl.plotting.training_curves import plot_training_curves
from minidl.utils import atomic_write
from minidl.visualization import grad_cam

STATE_FILE = "state.json"
LAST_CHECKPOINT = "checkpoint_last.h5"
BEST_CHECKPOINT = "best_model.h5"
INTERRUPTED_CHECKPOINT = "checkpoint_interrupted.h5"
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Arguments that define a run; --resume takes them from state.json.
RUN_ARGUMENTS = ("data", "weights", "epochs", "batch_size", "image_size", "steps", "validation_steps",
                 "freeze_base", "fine_tune_from", "head_epochs", "augment_validation", "seed", "quick",
                 "gradcam_layer", "bn_recalibration")


# ------------------------------------------------------------------------------ files
def write_text(path, text):
    with atomic_write(path) as temp_path:
        temp_path.write_text(text, encoding="utf-8")


def write_json(path, value):
    write_text(path, json.dumps(value, indent=2) + "\n")


def save_figure(figure, path):
    import matplotlib.pyplot as plt
    with atomic_write(path) as temp_path:
        figure.savefig(temp_path, format="png", dpi=100)
    plt.close(figure)


# ------------------------------------------------------------------------------ seeds
def seed_everything(seed):
    """Python's and NumPy's global RNGs and minidl's weight initialisation."""
    random.seed(seed)
    np.random.seed(seed)
    minidl.initializers.seed(seed)


def _dropout_layers(model):
    return [layer for layer in model.walk_layers(recursive=True) if isinstance(layer, Dropout)]


def seed_epoch(model, generators, seed, epoch, steps):
    """Derive every random draw of this epoch from (seed, epoch); see the module docstring."""
    random.seed(seed * 100003 + epoch)
    np.random.seed((seed * 100003 + epoch) % (2 ** 32))
    for index, layer in enumerate(_dropout_layers(model)):
        layer.rng = np.random.default_rng([seed, epoch, index])
    for generator, per_epoch in zip(generators, steps):
        generator.total_batches_seen = epoch * per_epoch
        generator.batch_index = 0
        generator.index_array = None          # a fresh shuffle, drawn from the seed above


# ------------------------------------------------------------------------------ state
def load_state(folder):
    from pathlib import Path
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise SystemExit(f"--resume {folder}: no {STATE_FILE} there; is it a workshop run folder?")
    return json.loads(path.read_text(encoding="utf-8"))


def restore_args(args, state):
    """The run's own arguments; an explicit --epochs (``args.epochs_given``) may change it."""
    epochs = args.epochs if getattr(args, "epochs_given", False) else None
    for name in RUN_ARGUMENTS:
        setattr(args, name, state["args"].get(name, getattr(args, name, None)))
    if epochs is not None:
        args.epochs = epochs
    return args


def new_state(args, history, epochs_completed, best_val_loss):
    return {"args": {name: getattr(args, name) for name in RUN_ARGUMENTS}, "history": history,
            "epochs_completed": epochs_completed, "best_val_loss": best_val_loss,
            "best_epoch": None, "interrupted": None, "finished": False}


def write_state(folder, state):
    write_json(folder / STATE_FILE, state)


def _write_history(folder, history):
    write_json(folder / "history.json", history)
    keys = [k for k in HISTORY_KEYS if k in history] + sorted(set(history) - set(HISTORY_KEYS))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch"] + keys)
    for epoch in range(len(history.get("loss", []))):
        writer.writerow([epoch + 1] + [repr(float(history[k][epoch])) for k in keys])
    write_text(folder / "history.csv", text.getvalue())


def end_of_epoch(model, folder, state, epoch_history):
    """Append the epoch to the history; save best/last checkpoints, history and state."""
    for key, values in epoch_history.items():
        state["history"].setdefault(key, []).extend(float(v) for v in values)
    state["epochs_completed"] += 1
    val_loss = epoch_history.get("val_loss", [None])[-1]
    if val_loss is not None and (state["best_val_loss"] is None or val_loss < state["best_val_loss"]):
        state["best_val_loss"] = float(val_loss)
        state["best_epoch"] = state["epochs_completed"]
        model.save_weights(folder / BEST_CHECKPOINT)   # weights only: a third of a full save
    model.save(folder / LAST_CHECKPOINT)
    state["finished"] = state["epochs_completed"] >= state["args"]["epochs"]
    _write_history(folder, state["history"])
    write_state(folder, state)        # last: it only ever points to files already complete


def save_interrupted(model, folder, state):
    """Ctrl-C: keep the mid-epoch model too; the state still points to the last full epoch."""
    try:
        model.save(folder / INTERRUPTED_CHECKPOINT)
        state["interrupted"] = {"during_epoch": state["epochs_completed"] + 1,
                                "checkpoint": INTERRUPTED_CHECKPOINT}
        write_state(folder, state)
    except KeyboardInterrupt:   # a second Ctrl-C: atomic writes left every file whole
        pass


class StopAfterThisEpoch(Callback):
    """``fit(epochs=N, initial_epoch=e)`` prints 'Epoch e+1/N'; this stops it after that one epoch."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class _SimulatedInterrupt:
    """Raise KeyboardInterrupt at a given (epoch, step), as Ctrl-C would (tests)."""

    def __init__(self, spec):
        epoch, step = (int(part) for part in spec.split(":"))
        self.epoch, self.step = epoch - 1, step - 1


class CtrlCBetweenSteps(Callback):
    """Ctrl-C during training: finish the current step, then stop with KeyboardInterrupt.

    Python delivers Ctrl-C as a KeyboardInterrupt wherever the program is; inside a
    Numba kernel (most of a training step) it comes out as a SystemError instead, and
    the model may be half-updated. So the signal only sets a flag here, and the
    KeyboardInterrupt is raised between two steps, where the model is consistent and
    the checkpoint can be saved. A second Ctrl-C stops at once.
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self.previous_handler = None

    def __enter__(self):
        self.previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGINT, self.previous_handler)

    def _on_sigint(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (Ctrl-C again stops at once)",
              file=sys.stderr, flush=True)

    def _stop_if_requested(self, *args):
        if self.requested:
            raise KeyboardInterrupt

    on_train_batch_begin = on_train_batch_end = _stop_if_requested
    on_test_batch_end = on_epoch_begin = _stop_if_requested


def interrupt_callbacks(spec):
    if not spec:
        return []
    target = _SimulatedInterrupt(spec)

    class SimulateCtrlC(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == target.epoch and batch == target.step:
                raise KeyboardInterrupt

    return [SimulateCtrlC()]


# ------------------------------------------------------------------------------ figures
def class_names(class_indices, known_names):
    """Names by class index: the workshop's for its two folders, else the folder name."""
    by_index = {index: folder for folder, index in class_indices.items()}
    return [known_names.get(by_index[i], by_index[i]) for i in range(len(by_index))]


def augmentation_figure(datagen, generator, target_size, seed):
    from minidl.plotting import show_augmentations
    from minidl.preprocessing.image import load_img
    first_image = load_img(generator.filepaths[0], target_size=target_size)
    return show_augmentations(datagen, first_image, n=9, seed=seed,
                              title="Training augmentation: 9 random versions of one image")


def training_curves_figure(history):
    return plot_training_curves(history)


def save_gradcam(model, x, img, layer_name, img_path, label, score, folder):
    heatmap = grad_cam(model, x, layer_name)[0]
    figure = plot_gradcam(np.asarray(img), heatmap,
                          title=f"{img_path.name}: {label} (score {float(score[0, 0]):.4g}), layer {layer_name}")
    save_figure(figure, folder / f"gradcam_{img_path.stem}.png")


def evaluate_validation(model, datagen, directory, target_size, batch_size, names, folder):
    """Every validation image once, unaugmented: confusion matrix, ROC curve, AUC."""
    generator = datagen.flow_from_directory(directory, target_size=target_size, batch_size=batch_size,
                                            class_mode="binary", shuffle=False)
    steps = -(-generator.samples // batch_size)
    scores = model.predict(generator, steps=steps)[:, 0]
    labels = np.asarray(generator.classes)
    predicted = (scores >= 0.5).astype(int)     # the workshop: 'Chest X-ray' if score < 0.5
    matrix = confusion_matrix(labels, predicted, labels=[0, 1])
    save_figure(plot_confusion_matrix(matrix, names), folder / "confusion_matrix.png")
    if 0 < labels.sum() < labels.size:
        fpr, tpr, _ = roc_curve(labels, scores)
        area = auc(fpr, tpr)
        save_figure(plot_roc_curve(fpr, tpr, area), folder / "roc_curve.png")
    else:
        area = float("nan")
    result = {"images": [str(p) for p in generator.filepaths], "labels": labels.tolist(),
              "scores": scores.tolist(), "confusion_matrix": matrix.tolist(), "class_names": names,
              "accuracy": float((predicted == labels).mean()), "auc": area,
              "sensitivity": float(matrix[1, 1] / max(matrix[1].sum(), 1)),
              "specificity": float(matrix[0, 0] / max(matrix[0].sum(), 1))}
    write_json(folder / "evaluation.json", result)
    return result


def fine_tuning(args):
    """The report's words for Keras's two-phase recipe, if the run used it."""
    if getattr(args, "fine_tune_from", None) is None:
        return ""
    return (f", head only for {args.head_epochs} epoch(s), then fine-tuning from layer {args.fine_tune_from} "
            f"with SGD(lr=1e-4, momentum=0.9)")


def write_report(folder, args, state, history, predictions, evaluation, names, training_seconds,
                 total_seconds, model):
    """report.md: what was run, the numbers, and links to the pictures."""
    matrix = evaluation["confusion_matrix"]
    last = {k: history[k][-1] for k in HISTORY_KEYS if history.get(k)}
    lines = [
        "# Workshop run: chest vs abdominal radiographs with InceptionV3 (minidl)", "",
        f"- weights: `{args.weights}`, image size {args.image_size}, batch {args.batch_size}, "
        f"epochs {state['epochs_completed']}/{args.epochs}, seed {args.seed}"
        f"{', base frozen' if args.freeze_base else ''}"
        f"{fine_tuning(args)}"
        f"{', augmented validation (original quirk)' if args.augment_validation else ''}"
        f"{', QUICK smoke-test mode' if args.quick else ''}",
        "- batch-norm statistics: "
        + ("re-estimated from the (unaugmented) training images before every validation "
           "(`--bn-recalibration`, a minidl addition: from random weights Keras's momentum-0.99 "
           "moving averages still carry their initial values and inference collapses to one class)"
           if args.bn_recalibration == "on" else "Keras's moving averages (momentum 0.99), unchanged"),
        f"- parameters: {model.count_params():,}",
        f"- wall time: training {training_seconds:.1f} s in this process, total {total_seconds:.1f} s",
        f"- best checkpoint (lowest val_loss {state['best_val_loss']}): epoch {state['best_epoch']} "
        f"-> `{BEST_CHECKPOINT}`; the numbers below use the final model, as the workshop does", "",
        "## Training", "", "![training curves](training_curves.png)", "",
        "Last epoch: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()) + " "
        "(history in [history.csv](history.csv))", "",
        "## Validation set (every image once, no augmentation)", "",
        f"- accuracy {evaluation['accuracy']:.3f}, sensitivity ({names[1]}) {evaluation['sensitivity']:.3f}, "
        f"specificity {evaluation['specificity']:.3f}, ROC AUC {evaluation['auc']:.3f}",
        f"- {len(evaluation['labels'])} images only: one image changes the accuracy by "
        f"{1 / max(len(evaluation['labels']), 1):.0%}; this is a demonstration, not a clinical evaluation.", "",
        f"| true \\ predicted | {names[0]} | {names[1]} |", "|---|---|---|",
        f"| {names[0]} | {matrix[0][0]} | {matrix[0][1]} |",
        f"| {names[1]} | {matrix[1][0]} | {matrix[1][1]} |", "",
        "![confusion matrix](confusion_matrix.png) ![ROC curve](roc_curve.png)", "",
        f"## TEST images (score = P({names[1]}))", "",
    ]
    for name, prediction in predictions.items():
        stem = name.rsplit(".", 1)[0]
        lines += [f"- `{name}`: score {prediction['score']:.4g} -> **{prediction['label']}**", "",
                  f"  ![Grad-CAM {name}](gradcam_{stem}.png)", ""]
    lines += ["## Augmentation", "", "![augmentations](augmentations.png)", ""]
    write_text(folder / "report.md", "\n".join(lines))

"""ROC curve, area under it, and the confusion matrix -- NumPy only.

For a binary classifier that outputs a score s (the workshop's sigmoid gives
P(class 1)), every threshold t makes a decision "class 1 if s >= t". Sweeping
t from +inf down to the lowest score traces the ROC curve::

    TPR(t) = #(positives with s >= t) / #positives      (sensitivity)
    FPR(t) = #(negatives with s >= t) / #negatives      (1 - specificity)

Tied scores move both rates in one step (a diagonal segment). The area under
the curve (AUC), by the trapezoidal rule, equals the probability that a random
positive scores higher than a random negative (ties count one half).

Semantics follow scikit-learn's ``roc_curve(drop_intermediate=False)``,
``auc`` and ``confusion_matrix`` (rows = true class, columns = predicted class),
with the first threshold ``inf`` as in scikit-learn >= 1.3.

Example::

    fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    auc(fpr, tpr)                                   # 0.75
    confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1])    # [[1, 1], [0, 2]]
"""
import numpy as np


def _binary_labels(y_true, pos_label, where):
    y_true = np.asarray(y_true).ravel()
    positives = y_true == pos_label
    if positives.all() or not positives.any():
        raise ValueError(f"{where}: needs both positive (== {pos_label!r}) and negative labels to draw "
                         f"a ROC curve; got {int(positives.sum())} positive(s) of {y_true.size}")
    return positives


def roc_curve(y_true, y_score, pos_label=1):
    """False-positive rates, true-positive rates and thresholds (descending).

    Returns ``(fpr, tpr, thresholds)``, each of length (number of distinct
    scores + 1); the first point is (0, 0) at threshold ``inf``, the last is
    (1, 1) at the lowest score.
    """
    y_score = np.asarray(y_score, dtype=np.float64).ravel()
    positives = _binary_labels(y_true, pos_label, "roc_curve")
    if positives.size != y_score.size:
        raise ValueError(f"roc_curve: y_true has {positives.size} labels but y_score has {y_score.size} scores")
    order = np.argsort(-y_score, kind="mergesort")          # highest score first
    sorted_scores = y_score[order]
    sorted_positive = positives[order]
    # Cumulative counts after taking the first k samples; keep only the last index of each
    # run of equal scores, so tied samples cross the threshold together.
    last_of_run = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_positive)[last_of_run]
    false_positives = (last_of_run + 1) - true_positives
    tpr = np.r_[0.0, true_positives / positives.sum()]
    fpr = np.r_[0.0, false_positives / (~positives).sum()]
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return fpr, tpr, thresholds


def auc(x, y):
    """Area under a curve through the points (x, y) by the trapezoidal rule.

    ``x`` must be monotonic (increasing or decreasing); a decreasing x gives
    the same positive area.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size != y.size or x.size < 2:
        raise ValueError(f"auc: needs at least 2 points and as many x as y; got {x.size} x and {y.size} y")
    steps = np.diff(x)
    if np.all(steps >= 0):
        direction = 1.0
    elif np.all(steps <= 0):
        direction = -1.0
    else:
        raise ValueError("auc: x is neither increasing nor decreasing")
    return float(direction * np.sum(steps * (y[1:] + y[:-1]) / 2.0))


def roc_auc_score(y_true, y_score, pos_label=1):
    """AUC of the ROC curve of ``y_score`` against ``y_true``."""
    fpr, tpr, _ = roc_curve(y_true, y_score, pos_label)
    return auc(fpr, tpr)


def confusion_matrix(y_true, y_pred, labels=None):
    """Counts ``C[i, j]`` = samples of true class ``labels[i]`` predicted as ``labels[j]``.

    ``labels`` defaults to the sorted union of the values in y_true and y_pred.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.size != y_pred.size:
        raise ValueError(f"confusion_matrix: y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    labels = np.unique(np.r_[y_true, y_pred]) if labels is None else np.asarray(labels)
    index = {label.item() if hasattr(label, "item") else label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for truth, prediction in zip(y_true.tolist(), y_pred.tolist()):
        if truth in index and prediction in index:
            matrix[index[truth], index[prediction]] += 1
    return matrix

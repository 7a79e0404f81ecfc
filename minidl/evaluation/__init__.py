"""Evaluating a classifier: ROC curve, AUC, confusion matrix (NumPy only).

Example::

    from minidl.evaluation import roc_curve, auc, confusion_matrix
    fpr, tpr, _ = roc_curve(labels, scores); print(auc(fpr, tpr))
"""
from minidl.evaluation.roc import auc, confusion_matrix, roc_auc_score, roc_curve

__all__ = ["auc", "confusion_matrix", "roc_auc_score", "roc_curve"]

"""ROC curve, AUC and confusion matrix against hand-computed small cases."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl.evaluation import auc, confusion_matrix, roc_auc_score, roc_curve


def test_roc_curve_hand_computed():
    # scores sorted: 0.8(P) 0.4(N) 0.35(P) 0.1(N); 2 positives, 2 negatives
    fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert np.isinf(thresholds[0])
    np.testing.assert_allclose(thresholds[1:], [0.8, 0.4, 0.35, 0.1])
    # area: 0.5 * 0.5 (between fpr .5 and 1 at tpr 1) + 0.5 * 0.5 = 0.75
    assert auc(fpr, tpr) == pytest.approx(0.75)


def test_ties_move_together_and_count_half():
    # one positive and one negative share the score 0.5: a diagonal step
    fpr, tpr, thresholds = roc_curve([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    # P(pos > neg) + 0.5 P(tie): pairs (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=0.5 (0.5,0.1)=1 -> 3.5/4
    assert roc_auc_score([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.875)


def test_perfect_and_inverted_classifiers():
    assert roc_auc_score([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert roc_auc_score([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)
    assert roc_auc_score(["chest", "abd"], [0.2, 0.7], pos_label="abd") == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=30))
def test_auc_equals_pairwise_probability(samples):
    labels = np.array([s[0] for s in samples], dtype=int)
    scores = np.array([s[1] for s in samples], dtype=float) / 5
    if labels.all() or not labels.any():
        with pytest.raises(ValueError, match="both positive"):
            roc_curve(labels, scores)
        return
    positives, negatives = scores[labels == 1], scores[labels == 0]
    pairs = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    assert roc_auc_score(labels, scores) == pytest.approx(pairs.mean())


def test_auc_decreasing_x_and_errors():
    assert auc([1, 0.5, 0], [1, 1, 0]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="neither increasing nor decreasing"):
        auc([0, 1, 0.5], [0, 1, 1])
    with pytest.raises(ValueError, match="scores"):
        roc_curve([0, 1, 1], [0.2, 0.3])


def test_confusion_matrix_hand_computed():
    matrix = confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(matrix, [[1, 1], [1, 2]])
    # rows = true, columns = predicted; a class never seen still gets its row
    np.testing.assert_array_equal(confusion_matrix([1, 1], [1, 1], labels=[0, 1]), [[0, 0], [0, 2]])
    np.testing.assert_array_equal(confusion_matrix(["b", "a", "a"], ["a", "a", "b"]), [[1, 1], [1, 0]])

# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Scores of merger detectors on a labelled test set: ROC AUC, precision-recall, error rates."""

import numpy as np
from astropy.table import QTable

from ..exceptions import InvalidParameterError
from ..utils._optional import optional_import

__all__ = ["classification_scores", "best_threshold", "score_table"]


def _check(labels, scores):
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, float)
    if labels.shape != scores.shape:
        raise InvalidParameterError(f"{labels.shape} labels for {scores.shape} scores")
    if labels.all() or not labels.any():
        raise InvalidParameterError("the labels need both classes")
    return labels, scores


def best_threshold(labels, scores, criterion="error"):
    """The score threshold that minimises the error rate (or maximises balanced accuracy).

    Chosen on a validation set and applied to the test set, so that the
    test error is not tuned on the test labels.  NaN scores count as
    negatives.
    """
    labels, scores = _check(labels, scores)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    candidates = np.unique(scores[np.isfinite(scores)])
    candidates = np.concatenate([candidates, [np.inf]])
    best, best_value = np.inf, np.inf
    for threshold in candidates:
        predicted = scores >= threshold
        if criterion == "error":
            value = np.mean(predicted != labels)
        elif criterion == "balanced":
            value = 1 - 0.5 * (np.mean(predicted[labels]) + np.mean(~predicted[~labels]))
        else:
            raise InvalidParameterError(f"criterion must be 'error' or 'balanced', not "
                                        f"{criterion!r}")
        if value < best_value:
            best, best_value = threshold, value
    return float(best)


def classification_scores(labels, scores, threshold):
    """ROC AUC, average precision, and the error, precision and recall at ``threshold``.

    Parameters
    ----------
    labels : array-like of bool
        True for a merger.
    scores : array-like of float
        Higher means more merger-like (a probability, an asymmetry).
    threshold : float
        Scores at or above it are called mergers.

    Returns
    -------
    scores : dict
        ``auc``, ``average_precision``, ``error``, ``balanced_error``,
        ``precision``, ``recall``, ``base_rate`` (the error of calling
        nothing a merger), ``n``, ``n_mergers``.
    """
    metrics = optional_import("sklearn.metrics", "ROC AUC and average precision", "mergers")
    labels, scores = _check(labels, scores)
    finite = np.where(np.isfinite(scores), scores, np.nanmin(scores[np.isfinite(scores)]) - 1)
    predicted = finite >= threshold
    true_positives = np.sum(predicted & labels)
    return {"auc": float(metrics.roc_auc_score(labels, finite)),
            "average_precision": float(metrics.average_precision_score(labels, finite)),
            "error": float(np.mean(predicted != labels)),
            "balanced_error": float(1 - 0.5 * (np.mean(predicted[labels])
                                               + np.mean(~predicted[~labels]))),
            "precision": float(true_positives / max(predicted.sum(), 1)),
            "recall": float(true_positives / labels.sum()),
            "base_rate": float(labels.mean()), "n": int(labels.size),
            "n_mergers": int(labels.sum())}


def score_table(results):
    """A QTable of ``{method: classification_scores(...)}``, one row per method."""
    rows = [{"method": method, **values} for method, values in results.items()]
    return QTable(rows=rows)

"""The evaluation numbers, from y_true and y_prob with scikit-learn, as a plain dict."""

from __future__ import annotations

import typing

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, log_loss

LABELS = list(range(10))


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, typing.Any]:
    """Accuracy, loss, per-class precision/recall/F1/support, averages, confusion matrix
    and every misclassified sample, all from one set of predictions."""
    y_pred = y_prob.argmax(axis=1)
    report = classification_report(y_true, y_pred, labels=LABELS, output_dict=True, zero_division=0)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = y_prob[wrong, y_pred[wrong]]
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_pred == y_true)),
        # Keras' categorical cross-entropy: the mean of -log p(true class).
        "loss": float(log_loss(y_true, y_prob, labels=LABELS)),
        "per_class": {str(k): _scores(report[str(k)]) for k in LABELS},
        "macro_avg": _scores(report["macro avg"]),
        "weighted_avg": _scores(report["weighted avg"]),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=LABELS).tolist(),
        # Most confident mistakes first.
        "misclassified": [
            {"index": int(i), "true": int(y_true[i]), "predicted": int(y_pred[i]), "confidence": c}
            for c, i in sorted(zip(confidence.tolist(), wrong, strict=True), reverse=True)
        ],
    }


def format_report(metrics: dict[str, typing.Any]) -> str:
    """The classification report as a text table, like scikit-learn prints it."""
    lines = [f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
    rows = [(k, v) for k, v in metrics["per_class"].items()]
    rows += [("macro avg", metrics["macro_avg"]), ("weighted avg", metrics["weighted_avg"])]
    for name, s in rows:
        lines.append(
            f"{name:>12} {s['precision']:9.4f} {s['recall']:9.4f} {s['f1']:9.4f} {s['support']:9d}"
        )
    lines.append(f"{'accuracy':>12} {metrics['accuracy']:9.4f}   loss {metrics['loss']:.4f}")
    return "\n".join(lines)


def _scores(row: dict[str, float]) -> dict[str, typing.Any]:
    return {
        "precision": float(row["precision"]),
        "recall": float(row["recall"]),
        "f1": float(row["f1-score"]),
        "support": int(row["support"]),
    }

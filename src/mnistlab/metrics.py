"""The evaluation numbers, from y_true and y_prob with scikit-learn, as a plain dict.

measure() is the one way any model's test metrics are computed: training, ensembles,
exports and evaluations all call it, so their numbers agree exactly.
"""

from __future__ import annotations

import typing

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from mnistlab.config import NUM_CLASSES

LABELS = list(range(NUM_CLASSES))
# Keras clips probabilities to [EPSILON, 1 - EPSILON] before taking their logarithm.
EPSILON = 1e-7


class Classifier(typing.Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def measure(
    model: Classifier, x: np.ndarray, y_true: np.ndarray
) -> tuple[dict[str, typing.Any], np.ndarray]:
    """classification_metrics of any model with predict_proba (a Predictor, an export) on
    labelled images (N, 28, 28), with the probabilities (N, 10) they came from."""
    y_prob = model.predict_proba(x)
    return classification_metrics(y_true, y_prob), y_prob


def accuracy(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    return float(np.mean(y_prob.argmax(axis=1) == y_true))


def cross_entropy(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Keras' categorical cross-entropy without regularisation: the mean of -log p(true)."""
    p_true = y_prob[np.arange(len(y_true)), y_true].astype(np.float64)
    return float(-np.mean(np.log(np.clip(p_true, EPSILON, 1.0 - EPSILON))))


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, typing.Any]:
    """Accuracy, loss, per-class precision/recall/F1/support, averages, confusion matrix
    and every misclassified sample, all from one set of predictions."""
    y_pred = y_prob.argmax(axis=1)
    report = classification_report(y_true, y_pred, labels=LABELS, output_dict=True, zero_division=0)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = y_prob[wrong, y_pred[wrong]]
    return {
        "n": len(y_true),
        "accuracy": accuracy(y_true, y_prob),
        "loss": cross_entropy(y_true, y_prob),
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


def string_metrics(
    texts_true: list[str],
    texts_read: list[str | None],
    confidences: list[float],
    touching: list[bool],
    seconds: float,
) -> dict[str, typing.Any]:
    """How well numbers were read (None: the reader found none): string accuracy overall,
    by length and with or without a touching pair; digit accuracy (1 - edit distance /
    digits); strings per second; and the risk-coverage table of a confidence threshold."""
    right = np.array([r == t for r, t in zip(texts_read, texts_true, strict=True)])
    lengths = np.array([len(t) for t in texts_true])
    touch = np.array(touching, bool)
    edits = sum(_edit_distance(r or "", t) for r, t in zip(texts_read, texts_true, strict=True))

    def share(where: np.ndarray) -> dict[str, typing.Any]:
        accuracy = float(right[where].mean()) if where.any() else None
        return {"n": int(where.sum()), "accuracy": accuracy}

    return {
        "n": len(texts_true),
        "string_accuracy": float(right.mean()),
        "digit_accuracy": 1.0 - edits / int(lengths.sum()),
        "by_length": {str(n): share(lengths == n) for n in sorted(set(lengths.tolist()))},
        "touching": share(touch),
        "not_touching": share(~touch),
        "strings_per_second": len(texts_true) / seconds,
        "risk_coverage": risk_coverage(right, np.array(confidences)),
    }


def risk_coverage(right: np.ndarray, confidence: np.ndarray) -> list[dict[str, float]]:
    """For each distinct confidence threshold, from the surest answers down: the share
    of answers accepted (coverage) and how many of those are right."""
    order = np.argsort(-confidence, kind="stable")
    correct = np.cumsum(right[order])
    rows = []
    for k in range(1, len(order) + 1):
        if k < len(order) and confidence[order[k]] == confidence[order[k - 1]]:
            continue  # ties are accepted together
        rows.append(
            {
                "threshold": float(confidence[order[k - 1]]),
                "coverage": k / len(order),
                "accuracy": float(correct[k - 1] / k),
            }
        )
    return rows


def coverage_at(table: list[dict[str, float]], accuracy: float) -> dict[str, float] | None:
    """The risk-coverage row with the most coverage whose accepted answers are at least
    `accuracy` right; None when no threshold gets there."""
    good = [row for row in table if row["accuracy"] >= accuracy]
    return max(good, key=lambda row: row["coverage"]) if good else None


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


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

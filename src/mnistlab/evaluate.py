"""Evaluate a finished run on a labelled digit set, and compare runs side by side."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np

from mnistlab import plots, report, runs
from mnistlab.data import Digits
from mnistlab.metrics import classification_metrics
from mnistlab.predict import Predictor

GRID_SIZE = 25
REPORT_MISTAKES = 10


def output_dir(run_dir: Path, record: dict, which: str, digits: Digits) -> Path:
    """The run folder itself for its final model on its own data; a subfolder otherwise."""
    if which == "final" and digits.sha256 == record["data_sha256"]:
        return Path(run_dir)
    return Path(run_dir) / runs.EVALUATIONS / f"{which}-{Path(digits.source).stem}"


def evaluate_run(run_dir: Path, digits: Digits, which: str = "final") -> tuple[dict, Path]:
    """Predict once, compute every metric, write figures, report.html and evaluation.json.

    Returns the evaluation and the folder it was written to; evaluation.json comes last.
    """
    run_dir = runs.require_finished(run_dir)
    predictor = Predictor.from_run(run_dir, which)
    y_prob = predictor.predict_proba(digits.x)
    metrics = classification_metrics(digits.y, y_prob)
    evaluation = {
        "model": which,
        "model_file": predictor.source,
        "data_source": digits.source,
        "data_sha256": digits.sha256,
        "metrics": metrics,
    }
    history = runs.read_json(run_dir / runs.HISTORY)
    figures = _figures(run_dir.name, history, metrics, digits, y_prob)

    record = runs.read_config(run_dir)
    out = output_dir(run_dir, record, which, digits)
    (out / runs.FIGURES).mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        runs.write_bytes(out / runs.FIGURES / f"{name}.png", png)
    mistakes = [
        (x, plots.digit_png(digits.x[x["index"]]))
        for x in metrics["misclassified"][:REPORT_MISTAKES]
    ]
    page = report.run_report(run_dir.name, record, evaluation, figures, mistakes)
    runs.write_bytes(out / runs.REPORT, page.encode())
    runs.write_json(out / runs.EVALUATION, evaluation)
    return evaluation, out


def compare_runs(run_dirs: list[Path], digits: Digits) -> tuple[list[dict], str]:
    """A summary row per run, all measured on the same digits, and the comparison page."""
    rows, histories, matrices = [], {}, {}
    for run_dir in run_dirs:
        run_dir = runs.require_finished(run_dir)
        name = _unique(run_dir, histories)
        predictor = Predictor.from_run(run_dir)
        metrics = classification_metrics(digits.y, predictor.predict_proba(digits.x))
        run_metrics = runs.read_metrics(run_dir)
        rows.append(
            {
                "run": name,
                "model": runs.read_config(run_dir)["config"]["preset"],
                "parameters": predictor.model.count_params(),
                "epochs": run_metrics["epochs_run"],
                "training seconds": round(run_metrics["training_seconds"], 1),
                "test accuracy": round(metrics["accuracy"], 4),
                "test loss": round(metrics["loss"], 4),
            }
        )
        histories[name] = runs.read_json(run_dir / runs.HISTORY)
        matrices[name] = metrics["confusion_matrix"]
    page = report.compare_report(
        rows,
        plots.to_png(plots.compare_curves(histories)),
        plots.to_png(plots.confusion_matrices(matrices)),
    )
    return rows, page


def _figures(
    name: str, history: list[dict], metrics: dict, digits: Digits, y_prob: np.ndarray
) -> dict[str, bytes]:
    y_pred = y_prob.argmax(axis=1)
    wrong = metrics["misclassified"][:GRID_SIZE]
    first = range(min(GRID_SIZE, len(digits.y)))
    figures = {
        "learning_curves": plots.learning_curves(history, f"Learning curves: {name}"),
        "confusion_matrix": plots.confusion_matrix_plot(metrics["confusion_matrix"]),
        "misclassified": plots.digit_grid(
            digits.x[[x["index"] for x in wrong]],
            [
                f"true {x['true']}, predicted {x['predicted']} ({x['confidence']:.3f})"
                for x in wrong
            ],
            title="Most confident mistakes",
        ),
        "predictions": plots.digit_grid(
            digits.x[list(first)],
            [f"predicted {y_pred[i]}, true {digits.y[i]}" for i in first],
            colors=[plots.RIGHT if y_pred[i] == digits.y[i] else plots.WRONG for i in first],
            title=f"The first {len(first)} images",
        ),
        "per_class_accuracy": plots.per_class_accuracy(metrics["confusion_matrix"]),
    }
    return {key: plots.to_png(figure) for key, figure in figures.items()}


def _unique(run_dir: Path, taken: typing.Container[str]) -> str:
    """The run's folder name, or its whole path where two runs share a name."""
    return run_dir.name if run_dir.name not in taken else str(run_dir)

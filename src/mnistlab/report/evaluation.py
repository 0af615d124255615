"""Evaluate a finished run on a labelled digit set, and compare runs side by side."""

from __future__ import annotations

import dataclasses
import time
import typing
from pathlib import Path

import numpy as np

from mnistlab import progress, runs
from mnistlab.data import SKLEARN_DIGITS, Digits, load_digits_set
from mnistlab.metrics import coverage_at, measure, risk_coverage, string_metrics
from mnistlab.predictor import Predictor
from mnistlab.read import (
    FILES_PER_BATCH,
    Reader,
    Reading,
    accepted_at,
    documents,
    is_unsure,
    judged,
    labelled,
    sure_mistakes,
)
from mnistlab.report import html, model_card, plots

if typing.TYPE_CHECKING:  # matplotlib itself is plots.py's
    from matplotlib.figure import Figure

GRID_SIZE = 25
REPORT_MISTAKES = 10
STRING_SEED = 0  # the string benchmark's images are the same for every run
# The documents' risk-coverage table: what each threshold accepts and how often it is right.
THRESHOLDS = (0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999)
DOCUMENTS_RIGHT = 0.99  # and the threshold at which the accepted are this often right
DOCUMENT_MISTAKES = 20


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What evaluate_run wrote: evaluation.json's record, the folder, and the figures."""

    record: dict[str, typing.Any]
    folder: Path
    # Matplotlib Figures: a notebook shows them inline.
    figures: dict[str, Figure]

    @property
    def metrics(self) -> dict[str, typing.Any]:
        return self.record["metrics"]

    def _repr_html_(self) -> str:
        """How Jupyter shows an evaluation: its headline and its figures, inline."""
        pngs = {name: plots.to_png(figure) for name, figure in self.figures.items()}
        return html.summary(self.record, pngs)


def output_dir(run: runs.Run, which: str, digits: Digits) -> Path:
    """The run folder itself for its final model on its own data; a subfolder otherwise."""
    if which == "final" and digits.sha256 == run.data_sha256:
        return run.path
    return run.path / runs.EVALUATIONS / f"{which}-{Path(digits.source).stem}"


def evaluate_run(
    run: runs.Run | Path,
    digits: Digits,
    which: str = "final",
    strings: int = 0,
    string_length: int | None = None,
) -> Evaluation:
    """Predict once, compute every metric, write figures, report.html and evaluation.json
    (last) into output_dir. With `strings`, also read that many numbers written with the
    digits (read_strings)."""
    run = runs.as_run(run)
    with progress.step(f"loading the {which} model"):
        predictor = Predictor.from_run(run, which)
    with progress.step(f"measuring on {len(digits.y):,} digits"):
        metrics, y_prob = measure(predictor, digits.x, digits.y)
    evaluation = {
        "model": which,
        "model_file": predictor.source,
        "data_source": digits.source,
        "data_sha256": digits.sha256,
        "metrics": metrics,
    }
    with progress.step("drawing the figures"):
        figures = evaluation_figures(run, metrics, digits, y_prob)
    if strings:
        evaluation["strings"] = read_strings(Reader(predictor), digits, strings, string_length)
        figures["risk_coverage"] = plots.risk_coverage(evaluation["strings"]["risk_coverage"])
    out = output_dir(run, which, digits)
    if out == run.path:  # the run's own model on its own test digits: its model card too
        with progress.step("measuring on scikit-learn's digits for the model card"):
            card = _model_card(run, predictor, evaluation, digits.y, y_prob)
        runs.write_bytes(run.path / runs.MODEL_CARD, card.encode())
    with progress.step("writing the figures and report.html"):
        _write(run, out, digits, evaluation, figures)
    return Evaluation(evaluation, out, figures)


def _model_card(run, predictor, evaluation, y_true, y_prob) -> str:
    sklearn = load_digits_set(SKLEARN_DIGITS)
    other, _ = measure(predictor, sklearn.x, sklearn.y)
    right, confidence = y_prob.argmax(1) == y_true, y_prob.max(1)
    reject = coverage_at(risk_coverage(right, confidence), model_card.RELIABLE)
    test = evaluation["metrics"]
    return model_card.render(run, test, other, reject, evaluation.get("strings"))


def _write(run: runs.Run, out: Path, digits: Digits, evaluation: dict, figures: dict) -> None:
    """Figures, report.html, then evaluation.json: the last says the evaluation is done."""
    metrics = evaluation["metrics"]
    pngs = {name: plots.to_png(figure) for name, figure in figures.items()}
    (out / runs.FIGURES).mkdir(parents=True, exist_ok=True)
    for name, png in pngs.items():
        runs.write_bytes(out / runs.FIGURES / f"{name}.png", png)
    mistakes = [
        (x, plots.digit_png(digits.x[x["index"]]))
        for x in metrics["misclassified"][:REPORT_MISTAKES]
    ]
    page = html.run_report(run, evaluation, pngs, mistakes)
    runs.write_bytes(out / runs.REPORT, page.encode())
    runs.write_json(out / runs.EVALUATION, evaluation)


def read_strings(
    reader: Reader, digits: Digits, n: int, length: int | None = None, seed: int = STRING_SEED
) -> dict[str, typing.Any]:
    """The string benchmark: n numbers written with the digits (documents.number_strings),
    read end to end as `mnistlab read` reads files, FILES_PER_BATCH to a model call."""
    written = documents.number_strings(digits.x, digits.y, n, seed, length)
    reader.read_many([written[0].image])  # compile the model's batch shapes: not timed
    start = time.perf_counter()
    readings = []
    with progress.bar(n, "number") as bar:
        for i in range(0, n, FILES_PER_BATCH):
            readings += reader.read_many([d.image for d in written[i : i + FILES_PER_BATCH]])
            bar.update(len(written[i : i + FILES_PER_BATCH]))
    seconds = time.perf_counter() - start
    read = [r if isinstance(r, Reading) else None for r in readings]
    record = string_metrics(
        [d.text for d in written],
        [r.text if r else None for r in read],
        [r.confidence if r else 0.0 for r in read],
        [d.touching for d in written],
        seconds,
    )
    return {"seed": seed, "length": length, **record}


def read_documents(reader: Reader, data: labelled.Labelled) -> dict[str, typing.Any]:
    """Labelled documents read as `mnistlab read` reads files, and judged
    (judge_documents) against their labels."""
    readings, seconds = read_labelled(reader, data.paths)
    return judge_documents(readings, data, seconds, reader.min_confidence)


def read_labelled(reader: Reader, paths: list[Path]) -> tuple[list[Reading | None], float]:
    """Each file's reading (None where there is none), read as `mnistlab read` reads files
    (decoding included in the time, FILES_PER_BATCH to a model call), and the seconds."""
    reader.read_many([np.zeros((28, 28), np.float32)])  # compile the batch shapes: not timed
    start = time.perf_counter()
    readings: list[Reading | None] = []
    with progress.bar(len(paths), "image") as bar:
        for _, r in reader.read_files(paths):
            readings.append(r if isinstance(r, Reading) else None)
            bar.update(1)
    return readings, time.perf_counter() - start


def judge_documents(
    readings: list[Reading | None], data: labelled.Labelled, seconds: float, threshold: float
) -> dict[str, typing.Any]:
    """Readings of the labelled documents against their labels: exact readings, what
    `threshold` accepts and how often that is right (with the sure mistakes among it:
    the reader's or the labels'), and the risk-coverage table at THRESHOLDS."""
    right, confidence = judged(readings, data.texts)
    table = risk_coverage(right, confidence)

    def accepted(threshold: float) -> dict[str, typing.Any]:
        taken = np.array(
            [r is not None and not is_unsure(r.confidence, threshold) for r in readings]
        )
        return {
            "threshold": threshold,
            "accepted": float(taken.mean()),
            "right": float(right[taken].mean()) if taken.any() else None,
        }

    return {
        "n": len(data.texts),
        "left_out": data.left_out,
        "accuracy": float(right.mean()),
        "no_number": sum(r is None for r in readings),
        "strings_per_second": len(data.texts) / seconds,
        "default": accepted(threshold),
        "sure_mistakes": sure_mistakes(
            readings, data.texts, [p.name for p in data.paths], threshold
        ),
        "at_99": accepted_at(table, DOCUMENTS_RIGHT),
        "risk_coverage": [accepted(t) for t in THRESHOLDS],
        "mistakes": [
            {"file": p.name, "label": t, "read": r.text if r else None,
             "confidence": round(r.confidence, 6) if r else 0.0}
            for p, t, r in zip(data.paths, data.texts, readings, strict=True)
            if not (r and r.text == t)
        ][:DOCUMENT_MISTAKES],
    }  # fmt: skip


def compare_runs(run_dirs: list[runs.Run | Path], digits: Digits) -> tuple[list[dict], str]:
    """A summary row per run, all measured on the same digits, and the comparison page."""
    rows, histories, matrices = [], {}, {}
    for run in run_dirs:
        run = runs.as_run(run)
        name = _unique(run.path, histories)
        predictor = Predictor.from_run(run)
        metrics, _ = measure(predictor, digits.x, digits.y)
        rows.append(
            {
                "run": name,
                "model": run.preset,
                "parameters": predictor.model.count_params(),
                "epochs": run.metrics["epochs_run"],
                "training seconds": round(run.metrics["training_seconds"], 1),
                "test accuracy": round(metrics["accuracy"], 4),
                "test loss": round(metrics["loss"], 4),
            }
        )
        histories[name] = run.history
        matrices[name] = metrics["confusion_matrix"]
    page = html.compare_report(
        rows,
        plots.to_png(plots.compare_curves(histories)),
        plots.to_png(plots.confusion_matrices(matrices)),
    )
    return rows, page


def evaluation_figures(
    run: runs.Run, metrics: dict, digits: Digits, y_prob: np.ndarray
) -> dict[str, Figure]:
    """The report's figures, as matplotlib Figures (a notebook shows them inline)."""
    y_pred = y_prob.argmax(axis=1)
    wrong = metrics["misclassified"][:GRID_SIZE]
    first = range(min(GRID_SIZE, len(digits.y)))
    figures = {
        "learning_curves": plots.learning_curves(run.history, f"Learning curves: {run.name}"),
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
    return figures


def _unique(run_dir: Path, taken: typing.Container[str]) -> str:
    """The run's folder name, or its whole path where two runs share a name."""
    return run_dir.name if run_dir.name not in taken else str(run_dir)

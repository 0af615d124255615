"""Matplotlib figures from arrays. Each returns a Figure; the caller saves it (to_png).

Figures are built with matplotlib.figure.Figure, not pyplot: no global state, no GUI
backend, safe in a server thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure

DPI = 100
RIGHT, WRONG = "tab:green", "tab:red"


def to_png(figure: Figure) -> bytes:
    """PNG bytes of exactly figsize * DPI pixels (no tight bounding box, so sizes are known)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def digit_png(image: np.ndarray) -> bytes:
    """One 28x28 digit as a small PNG, dark ink on white like the grids."""
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, image, cmap="gray_r", vmin=0, vmax=255, format="png")
    return buffer.getvalue()


def learning_curves(history: Sequence[dict], title: str = "") -> Figure:
    """Accuracy and loss per epoch, training against validation, best val_loss epoch marked."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    figure.suptitle(title or "Learning curves")
    if not history:  # an ensemble is assembled, not trained
        figure.text(0.5, 0.5, "No training epochs in this run", ha="center", va="center")
        return figure
    epochs = [row["epoch"] for row in history]
    best = min(history, key=lambda row: row["val_loss"])["epoch"]
    for ax, metric in zip(figure.subplots(1, 2), ("accuracy", "loss"), strict=True):
        ax.plot(epochs, [row[metric] for row in history], "o-", label="training")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], "o-", label="validation")
        ax.axvline(best, color="grey", linestyle="--", label=f"best epoch ({best})")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    return figure


def confusion_matrix_plot(matrix: Sequence[Sequence[int]], title: str = "") -> Figure:
    """Heatmap of the confusion matrix with the count in every cell."""
    figure = Figure(figsize=(6, 5.5), layout="constrained")
    _draw_confusion(figure.subplots(), np.asarray(matrix), title or "Confusion matrix")
    return figure


def confusion_matrices(matrices: dict[str, Sequence[Sequence[int]]]) -> Figure:
    """One confusion matrix per run, side by side."""
    figure = Figure(figsize=(5 * len(matrices), 5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(matrices)))
    for ax, (name, matrix) in zip(axes, matrices.items(), strict=True):
        _draw_confusion(ax, np.asarray(matrix), name)
    return figure


def digit_grid(
    images: np.ndarray,
    titles: Sequence[str],
    colors: Sequence[str] | None = None,
    columns: int = 5,
    title: str = "",
) -> Figure:
    """Images (N, 28, 28) in a grid, each with its title (and title colour)."""
    rows = max(1, math.ceil(len(images) / columns))
    figure = Figure(figsize=(2.2 * columns, 2.4 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=9, color=colors[i] if colors else "black")
    if title:
        figure.suptitle(title)
    return figure


def per_class_accuracy(matrix: Sequence[Sequence[int]]) -> Figure:
    """Bars of each digit's accuracy (its recall), with the value on each bar."""
    matrix = np.asarray(matrix)
    accuracy = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    figure = Figure(figsize=(8, 4), layout="constrained")
    ax = figure.subplots()
    bars = ax.bar(range(len(accuracy)), accuracy, color="tab:blue")
    ax.bar_label(bars, labels=[f"{a:.3f}" for a in accuracy], fontsize=8)
    low = max(0.0, float(accuracy.min()) - 0.05)
    ax.set(xlabel="digit", ylabel="accuracy", title="Accuracy per class", ylim=(low, 1.0))
    ax.set_xticks(range(len(accuracy)))
    return figure


def risk_coverage(table: Sequence[dict], title: str = "Reading numbers: risk, coverage") -> Figure:
    """String accuracy of the accepted readings against the share accepted, as the
    confidence threshold falls."""
    figure = Figure(figsize=(5, 3.6))
    ax = figure.subplots()
    ax.plot([r["coverage"] for r in table], [r["accuracy"] for r in table], drawstyle="steps-post")
    ax.set(xlabel="coverage (share of strings accepted)", ylabel="accuracy of those", title=title)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def compare_curves(histories: dict[str, Sequence[dict]]) -> Figure:
    """Validation and training loss and accuracy per epoch, one line per run."""
    figure = Figure(figsize=(12, 8), layout="constrained")
    panels = [("val_loss", "Validation loss"), ("val_accuracy", "Validation accuracy"),
              ("loss", "Training loss"), ("accuracy", "Training accuracy")]  # fmt: skip
    for ax, (key, title) in zip(figure.subplots(2, 2).ravel(), panels, strict=True):
        for name, history in histories.items():
            ax.plot([r["epoch"] for r in history], [r[key] for r in history], "o-", label=name)
        ax.set(xlabel="epoch", ylabel=key, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def _draw_confusion(ax, matrix: np.ndarray, title: str) -> None:
    ax.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2
    for (true, predicted), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(predicted, true, str(count), ha="center", va="center", fontsize=7, color=color)
    ticks = range(matrix.shape[0])
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=title)

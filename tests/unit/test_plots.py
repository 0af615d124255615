"""Figures are real PNGs of the size they promise, not just files that exist."""

import io

import numpy as np
import pytest
from PIL import Image

from mnistlab.report import plots

HISTORY = [
    {"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1), "val_loss": abs(e - 3) + 0.1,
     "val_accuracy": 0.9}
    for e in range(1, 7)
]  # fmt: skip
MATRIX = (np.eye(10, dtype=int) * 90 + 1).tolist()
DIGITS = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)


def png_size(png: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    image.verify()  # raises on a damaged file
    return image.size


@pytest.mark.parametrize(
    ("figure", "size"),
    [
        (lambda: plots.learning_curves(HISTORY), (1000, 400)),
        (lambda: plots.confusion_matrix_plot(MATRIX), (600, 550)),
        (lambda: plots.confusion_matrices({"a": MATRIX, "b": MATRIX}), (1000, 500)),
        (lambda: plots.per_class_accuracy(MATRIX), (800, 400)),
        (lambda: plots.compare_curves({"a": HISTORY, "b": HISTORY[:3]}), (1200, 800)),
        (lambda: plots.digit_grid(DIGITS, [str(i) for i in range(7)], columns=5), (1100, 520)),
    ],
    ids=["curves", "confusion", "confusions", "per-class", "compare", "grid"],
)
def test_figures_are_pngs_of_the_expected_size(figure, size):
    assert png_size(plots.to_png(figure())) == size


def test_grid_titles_and_colours_are_drawn():
    titles = ["true 1, predicted 7 (0.93)", "true 2, predicted 2 (0.99)"]
    figure = plots.digit_grid(DIGITS[:2], titles, colors=[plots.WRONG, plots.RIGHT], columns=2)
    shown = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert shown == titles
    assert figure.axes[0].title.get_color() == plots.WRONG


def test_learning_curves_mark_the_best_val_loss_epoch():
    figure = plots.learning_curves(HISTORY)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["training", "validation", "best epoch (3)"]


def test_digit_png_keeps_28_by_28():
    assert png_size(plots.digit_png(DIGITS[0])) == (28, 28)

"""Trials in TensorBoard's HParams dashboard."""

from __future__ import annotations

import statistics
import typing
from pathlib import Path

from mnistlab.tune.space import MAX_LAYERS

TENSORBOARD = "tensorboard"


def log_hparams(
    folder: Path, number: int, params: dict[str, typing.Any], trainings: list[list[dict]]
) -> None:
    """One trial in TensorBoard's HParams dashboard (`tensorboard --logdir
    <study>/tensorboard`): its parameters, and its val_accuracy and val_loss (the mean
    over its trainings of the best of each), as Keras Tuner users see theirs."""
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    trainings = [epochs for epochs in trainings if epochs]
    if not trainings:
        return
    metrics = {
        "val_accuracy": statistics.mean(max(e["val_accuracy"] for e in t) for t in trainings),
        "val_loss": statistics.mean(min(e["val_loss"] for e in t) for t in trainings),
    }
    # Every trial names every parameter (a layer it does not have: 0), so that the
    # dashboard's columns are the same for all.
    absent = {f"{name}_{i}": 0 for i in range(MAX_LAYERS) for name in ("units", "dropout", "l2")}
    experiment, start, end = hparams({**absent, **params}, metrics)
    with SummaryWriter(str(folder / TENSORBOARD / f"trial-{number:04d}")) as writer:
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)
        for name, value in metrics.items():
            writer.add_scalar(name, value)

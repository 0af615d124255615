"""The Python API for notebooks and scripts: `import mnistlab`, then mnistlab.train(...).

Each function takes a Run or a run folder wherever it needs a run, and chooses the Keras
backend (mnistlab.backend) before anything imports Keras, so that `import mnistlab`
works whatever keras.json says.
"""

from __future__ import annotations

import os
import typing
import warnings
from pathlib import Path

import numpy as np

from mnistlab import backend, runs
from mnistlab.config import (
    AdaptConfig,
    PredictConfig,
    ReadConfig,
    TrainConfig,
    override,
    preset_config,
)
from mnistlab.data import Digits, Mnist, load_digits_set, load_mnist
from mnistlab.errors import UserError

if typing.TYPE_CHECKING:
    from mnistlab.predictor import Prediction
    from mnistlab.read import Reading
    from mnistlab.read.adapt import Adapted
    from mnistlab.report import Evaluation

PathLike = str | os.PathLike


def train(
    preset: str | TrainConfig = "deep-mlp",
    *,
    data: Mnist | PathLike | None = None,
    run_dir: PathLike | None = None,
    verbose: int | str = "auto",
    **options: typing.Any,
) -> runs.Run:
    """Train a preset (or a TrainConfig), its fields replaced by `options` (epochs=3, ...),
    into `run_dir` (default: runs/<time>-<preset>); the finished Run holds its model,
    history and metrics. An unfinished run in `run_dir` is resumed."""
    _choose_backend()
    from mnistlab.training import train as train_config

    if isinstance(preset, TrainConfig):
        config = override(preset, **options)
    else:
        config = preset_config(preset, **options)
    mnist = data if isinstance(data, Mnist) else load_mnist(data)
    if run_dir is None:
        run_dir = runs.new_run_dir(runs.DEFAULT_ROOT, config.preset)
    return train_config(config, mnist, Path(run_dir), verbose)


def open_run(run: PathLike) -> runs.Run:
    """A finished run, from its folder; its `model` loads on first use."""
    _choose_backend()
    return runs.open_run(Path(run))


def evaluate(
    run: runs.Run | PathLike,
    data: Digits | PathLike | None = None,
    model: str = "final",
) -> Evaluation:
    """Evaluate a run as `mnistlab evaluate` does, writing its report; the Evaluation's
    metrics, and its figures as matplotlib Figures (a notebook shows them inline)."""
    _choose_backend()
    from mnistlab.report import evaluate_run

    digits = data if isinstance(data, Digits) else load_digits_set(data)
    return evaluate_run(runs.as_run(run), digits, model)


def predict(
    run: runs.Run | PathLike,
    images: np.ndarray | PathLike | list[PathLike],
    model: str = "final",
    min_confidence: float = 0.0,
) -> list[Prediction]:
    """The digit in each image: image files or folders (preprocessed as MNIST was made),
    or an array of MNIST-style digits (N, 28, 28). `run` may be an .onnx export too. An
    unreadable file is an ImageError."""
    _choose_backend()
    from mnistlab.predictor import predict_paths, predictor_for

    config = PredictConfig(run=_target(run), model=model, min_confidence=min_confidence)
    if isinstance(images, np.ndarray):
        return predictor_for(config).predict_digits(images, config.min_confidence)
    return _answers(images, lambda files: predict_paths(config, files))


def read_numbers(
    run: runs.Run | PathLike,
    images: PathLike | list[PathLike],
    model: str = "final",
    min_confidence: float | None = None,
    length: int | None = None,
) -> list[Reading]:
    """The number written in each image file (folders: every image in them), read as
    `mnistlab read` reads them, with the run's reader (an adapted one where `adapt` made
    the run). An unreadable file, or one with no number found, is an ImageError."""
    _choose_backend()
    from mnistlab.read import read_paths

    config = ReadConfig(run=_target(run), model=model, min_confidence=min_confidence, length=length)
    return _answers(images, lambda files: read_paths(config, files))


def read_dataset(
    dataset,
    run: runs.Run | PathLike,
    model: str = "final",
    min_confidence: float | None = None,
    length: int | None = None,
    actors: int = 1,
):
    """A Ray Dataset of images (rows with "path", as ray.data.from_items makes them, or
    with "bytes" too, as ray.data.read_binary_files(..., include_paths=True) does) ->
    the lazy Dataset of their readings, by `actors` Ray actors that load the reader once:
    columns path, text, confidence, unsure, error (None, or why the image has no
    reading), line and record (`mnistlab read --json`'s JSON). Write it with any Ray
    writer (write_parquet, write_json). Needs pip install 'mnistlab[ray]'."""
    from mnistlab import cluster
    from mnistlab.read import job

    config = ReadConfig(run=_target(run), model=model, min_confidence=min_confidence, length=length)
    return cluster.answer_dataset(dataset, job(config), actors)


def predict_dataset(
    dataset, run: runs.Run | PathLike, model: str = "final", min_confidence: float = 0.0,
    actors: int = 1,
):  # fmt: skip
    """As read_dataset, for one digit an image (`mnistlab predict`): columns path, digit
    (None: unsure), probability, unsure, error, line and record."""
    from mnistlab import cluster
    from mnistlab.predictor import job

    config = PredictConfig(run=_target(run), model=model, min_confidence=min_confidence)
    return cluster.answer_dataset(dataset, job(config), actors)


def _target(run: runs.Run | PathLike) -> str:
    return str(run.path if isinstance(run, runs.Run) else run)


def adapt(
    run: runs.Run | PathLike,
    folder: PathLike,
    labels: PathLike | None = None,
    out: PathLike | None = None,
    **options: typing.Any,
) -> Adapted:
    """Fit the run's reader to a folder of labelled images (labels.csv: filename,label) as
    `mnistlab adapt` does, into `out` (default: runs/<time>-<preset>-adapted); options are
    AdaptConfig's (epochs=..., hold_out=...). The Adapted's path is a run: pass it to read,
    evaluate, predict or serve."""
    _choose_backend()
    from mnistlab.read.adapt import adapt as adapt_config

    opened = runs.as_run(run if isinstance(run, runs.Run) else Path(run))
    config = AdaptConfig(
        run=str(opened.path), folder=str(folder), labels=str(labels) if labels else None, **options
    )
    if out is None:
        out = runs.new_run_dir(runs.DEFAULT_ROOT, f"{opened.preset}-adapted")
    return adapt_config(config, Path(out))


def _answers(images: PathLike | list[PathLike], answer_all) -> list:
    """Each image file's answer (folders: every image in them), in order; the first file
    that cannot be answered is an ImageError naming it."""
    from mnistlab.images import ImageError, image_files

    paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    files, _ = image_files(paths)
    answers = []
    for path, answer in answer_all(files):
        if isinstance(answer, UserError):
            raise ImageError(f"{path}: {answer}") from answer
        answers.append(answer)
    return answers


def _choose_backend() -> None:
    notice = backend.choose()
    if notice:
        warnings.warn(notice, stacklevel=3)

"""Predictor: a trained model loaded for inference, the one way code gets predictions.

It runs a Keras model (a run's .keras file) or an ONNX file with ONNX Runtime. Keras is
imported only for the first: serving an ONNX file never loads Keras or JAX.
"""

from __future__ import annotations

import functools
import os
import threading
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistlab import bulk, images, runs
from mnistlab.config import ENGINES, MODELS, PredictConfig, one_of, require
from mnistlab.data import IMAGE_SHAPE, NUM_CLASSES, scale
from mnistlab.errors import ModelFileError, UserError, first_line

MODEL_FILES = {"final": runs.FINAL_MODEL, "best": runs.BEST_MODEL}
PREDICT_BATCH_SIZE = 1000
# Up to this many images, a Dense-only model runs in NumPy: model.predict costs
# milliseconds per call in set-up alone (benchmarks/serve_load.py).
FAST_PATH_MAX_BATCH = 64
# Keras compiles its predict function once per batch shape (0.3-0.5 s for a CNN), so a
# batch is padded up to one of these sizes: a dozen compilations, not one per size seen.
BATCH_BUCKETS = (*(2**i for i in range(10)), PREDICT_BATCH_SIZE)


@dataclass(frozen=True)
class Prediction:
    """One image's answer: the digit (None when unsure) and every class probability."""

    digit: int | None
    probability: float
    probabilities: list[float]
    preprocessed: np.ndarray

    def top(self, k: int) -> list[tuple[int, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(d), float(self.probabilities[d])) for d in order]

    def line(self, k: int) -> str:
        said = "unsure" if self.digit is None else str(self.digit)
        others = " ".join(f"{d}:{q:.3f}" for d, q in self.top(k))
        return f"{said} (p={self.probability:.3f}) top: {others}"

    def as_record(self, k: int) -> dict[str, typing.Any]:
        """For JSON: the digit (None: unsure), the k likeliest, the digit's probability."""
        ranked = [{"digit": d, "probability": round(q, 6)} for d, q in self.top(k)]
        return {"digit": self.digit, "top": ranked, "probability": round(self.probability, 6)}


class Predictor:
    """Class probabilities for MNIST-style 28x28 images."""

    def __init__(self, source: str, model=None, session=None):
        """Exactly one of `model` (keras.Model) and `session` (onnxruntime.InferenceSession)."""
        self.source = source
        self.model = model
        self.session = session
        self.engine = "keras" if model is not None else "onnx"
        self._dense = _dense_stack(model) if model is not None else None
        # An ensemble's members run one by one, as they ran alone: so an ensemble's
        # probabilities are exactly the mean of its members' (XLA fuses a whole ensemble
        # differently, and its sums differ in the last bit).
        self._members = _ensemble_members(model) if model is not None else None
        # Keras' predict is not reentrant: on JAX it takes the variables out of the model
        # while it runs, and a second thread then finds them gone, for good.
        self._keras_lock = threading.Lock()

    @classmethod
    def load(
        cls, target: runs.Run | Path, which: str = "final", engine: str = "keras"
    ) -> Predictor:
        """A run (its Keras model, or with engine onnx its ONNX export) or an .onnx file."""
        if not isinstance(target, runs.Run) and Path(target).suffix == ".onnx":
            return cls.from_onnx(target)
        return cls.from_run(target, which, engine)

    @classmethod
    def from_run(
        cls, run: runs.Run | Path, which: str = "final", engine: str = "keras"
    ) -> Predictor:
        """Load `final_model.keras` (see TrainConfig.final_weights) or `best_model.keras`;
        with engine onnx, the run's ONNX export of that model (`mnistlab export`)."""
        require([one_of("model", which, MODELS), one_of("engine", engine, ENGINES)])
        run_dir = runs.as_run(run).path
        if engine == "onnx":
            path = run_dir / runs.EXPORTS / f"{which}.onnx"
            if not path.is_file():
                raise runs.RunError(
                    f"{run_dir} has no ONNX export of its {which} model; make it with: "
                    f"mnistlab export {run_dir} --model {which}"
                )
            return cls.from_onnx(path)
        path = run_dir / MODEL_FILES[which]
        if not path.is_file():
            raise runs.RunError(f"{run_dir} has no {which} model ({path.name})")
        return cls.from_keras_file(path)

    @classmethod
    def from_keras_file(cls, path: Path) -> Predictor:
        """A .keras (or legacy .h5) file holding an MNIST classifier."""
        from mnistlab.models import load_model  # Keras: only for Keras models

        return cls(str(path), model=load_model(path))

    @classmethod
    def from_onnx(cls, path: Path) -> Predictor:
        """An ONNX file taking (N, 28, 28) float pixels and giving (N, 10) probabilities."""
        try:
            import onnxruntime
        except ImportError:
            raise ModelFileError(
                "running an ONNX model needs the package onnxruntime: pip install 'mnistlab[onnx]'"
            ) from None
        if not Path(path).is_file():
            raise ModelFileError(f"{path}: no such file")
        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types for every kind of bad file
            raise ModelFileError(f"{path}: not a loadable ONNX model ({first_line(e)})") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        shapes = [list(i.shape) for i in inputs], [list(o.shape) for o in outputs]
        if (
            len(inputs) != 1
            or len(outputs) != 1
            or inputs[0].type != "tensor(float)"
            or shapes[0][0][1:] != list(IMAGE_SHAPE)
            or shapes[1][0][1:] != [NUM_CLASSES]
        ):
            raise ModelFileError(
                f"{path}: an ONNX model, but not an MNIST classifier: it takes {shapes[0]} "
                f"and gives {shapes[1]}; expected one (N, 28, 28) float input and (N, 10) output"
            )
        return cls(str(path), session=session)

    def predict_proba(self, images_: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 pixels, or floats already in [0, 1] -> (N, 10) probabilities.

        Safe to call from several threads. Small batches of a Dense-only model run in
        NumPy (equal to Keras within float rounding); others run the compiled Keras predict
        function, 1000 images at a time, one call at a time. An ONNX model runs in ONNX
        Runtime, 1000 images at a time.
        """
        x = scale(images_) if images_.dtype == np.uint8 else images_
        x = x.astype("float32", copy=False)
        if self._dense is not None and len(x) <= FAST_PATH_MAX_BATCH:
            return _dense_forward(self._dense, x)
        chunks = [x[i : i + PREDICT_BATCH_SIZE] for i in range(0, len(x), PREDICT_BATCH_SIZE)]
        if not chunks:
            return np.zeros((0, NUM_CLASSES), np.float32)
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            return np.concatenate([self.session.run(None, {name: c})[0] for c in chunks])
        with self._keras_lock:
            return np.concatenate([self._keras_batch(c) for c in chunks])

    def _keras_batch(self, x: np.ndarray) -> np.ndarray:
        """One compiled call on x padded with blank rows to a bucket size (rows are
        independent at inference, BatchNorm included)."""
        size = next(b for b in BATCH_BUCKETS if b >= len(x))
        padded = np.zeros((size, *x.shape[1:]), np.float32)
        padded[: len(x)] = x
        models = self._members or [self.model]
        return average([np.asarray(m.predict_on_batch(padded))[: len(x)] for m in models])

    def warm_up(self, max_batch: int) -> None:
        """Compile the Keras predict function for every batch size up to `max_batch`, so
        that no request waits for a compilation."""
        for size in BATCH_BUCKETS:
            self.predict_proba(np.zeros((size, *IMAGE_SHAPE), np.float32))
            if size >= max_batch:
                return

    def predict_digits(self, digits: np.ndarray, min_confidence: float = 0.0) -> list[Prediction]:
        """Preprocessed (N, 28, 28) digits -> a Prediction each; unsure below min_confidence."""
        probabilities = self.predict_proba(digits)
        answers = []
        for digit, p in zip(digits, probabilities, strict=True):
            best = int(p.argmax())
            sure = float(p[best]) >= min_confidence
            answers.append(Prediction(best if sure else None, float(p[best]), p.tolist(), digit))
        return answers

    def predict_files(
        self, paths: list[bytes | str | os.PathLike], min_confidence: float = 0.0
    ) -> list[tuple[Path, Prediction | UserError]]:
        """Each image file (or its bytes) -> its Prediction, or the error that kept it from
        having one."""
        digits, results = [], []
        for path in paths:
            try:
                digits.append(images.load_digit(path))
                results.append((path, None))
            except images.ImageError as e:
                results.append((path, e))
        answers = iter(self.predict_digits(np.array(digits), min_confidence) if digits else [])
        return [(path, error or next(answers)) for path, error in results]


# Image files per model call in predict_paths: one digit each.
FILES_PER_CALL = 256


def predict_paths(
    config: PredictConfig, files: list[Path]
) -> Iterator[tuple[Path, Prediction | UserError]]:
    """Each image file -> its Prediction or its error, in order, FILES_PER_CALL files to
    a model call (so that a long folder shows progress and holds little in memory)."""
    predictor = predictor_for(config)
    for start in range(0, len(files), FILES_PER_CALL):
        yield from predictor.predict_files(
            files[start : start + FILES_PER_CALL], config.min_confidence
        )


def predictor_for(config: PredictConfig) -> Predictor:
    return Predictor.load(Path(config.run), config.model, config.engine)


def job(config: PredictConfig) -> bulk.Job:
    """`predict`'s work on files, for worker processes (bulk) and Ray actors (cluster)."""
    return bulk.Job(
        load=functools.partial(predictor_for, config),
        answer=functools.partial(_predict_chunk, min_confidence=config.min_confidence),
        describe=functools.partial(describe, k=config.top_k),
        chunk=FILES_PER_CALL,
        columns={"digit": "int64", "probability": "float64"},
    )


def describe(prediction: Prediction, k: int) -> bulk.Described:
    return prediction.as_record(k), prediction.line(k), prediction.digit is None


def _predict_chunk(predictor: Predictor, paths: list, min_confidence: float) -> list:
    return [answer for _, answer in predictor.predict_files(paths, min_confidence)]


def average(probabilities: list[np.ndarray]) -> np.ndarray:
    """The mean of several models' (N, 10) probabilities, summed in order and divided, as
    Keras' Average layer does; one model's unchanged."""
    total = probabilities[0]
    for p in probabilities[1:]:
        total = total + p
    return total / len(probabilities) if len(probabilities) > 1 else total


def _ensemble_members(model) -> list | None:
    """The member models of an ensemble that mnistlab.ensemble built (an input, nested
    models, and their Average); None for any other model."""
    import keras

    *members, last = model.layers[1:]
    if not (members and isinstance(last, keras.layers.Average)):
        return None
    return members if all(isinstance(m, keras.Model) for m in members) else None


def _dense_stack(model) -> list[tuple[np.ndarray, np.ndarray, str]] | None:
    """(kernel, bias, activation) per Dense layer, if the model is only Flatten, Dense and
    Dropout (a no-op at inference) with relu/softmax; otherwise None."""
    import keras

    stack = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Dropout)):
            continue
        if not isinstance(layer, keras.layers.Dense):
            return None
        name = keras.activations.serialize(layer.activation)
        if name not in ("relu", "softmax", "linear"):
            return None
        kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float32)
        bias = (
            keras.ops.convert_to_numpy(layer.bias).astype(np.float32)
            if layer.use_bias
            else np.zeros(kernel.shape[1], np.float32)
        )
        stack.append((kernel, bias, name))
    return stack if stack and stack[-1][2] == "softmax" else None


def _dense_forward(stack, x: np.ndarray) -> np.ndarray:
    h = x.reshape(len(x), -1)  # (N, 784)
    for kernel, bias, activation in stack:
        h = h @ kernel + bias
        if activation == "relu":
            np.maximum(h, 0.0, out=h)
    h -= h.max(axis=1, keepdims=True)  # softmax, stable
    np.exp(h, out=h)
    return h / h.sum(axis=1, keepdims=True)

"""Predictor: a trained model loaded for inference, the one way code gets predictions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from mnistlab import images, runs
from mnistlab.errors import UserError
from mnistlab.models import MaxPool2x2

MODEL_FILES = {"final": runs.FINAL_MODEL, "best": runs.BEST_MODEL}
PREDICT_BATCH_SIZE = 1000
# Up to this many images, a Dense-only model runs in NumPy: model.predict costs
# milliseconds per call in set-up alone (benchmarks/serve_load.py).
FAST_PATH_MAX_BATCH = 64


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


class Predictor:
    """Class probabilities for MNIST-style 28x28 images."""

    def __init__(self, model: keras.Model, source: str):
        self.model = model
        self.source = source
        self._dense = _dense_stack(model)

    @classmethod
    def from_run(cls, run_dir: Path, which: str = "final") -> Predictor:
        """Load `final_model.keras` (early stopping's best val_loss) or `best_model.keras`."""
        if which not in MODEL_FILES:
            raise ValueError(f"unknown model {which!r}; choose from: {', '.join(MODEL_FILES)}")
        path = runs.require_finished(run_dir) / MODEL_FILES[which]
        if not path.is_file():
            raise runs.RunError(f"{run_dir} has no {which} model ({path.name})")
        model = keras.saving.load_model(path, custom_objects={"MaxPool2x2": MaxPool2x2})
        return cls(model, str(path))

    def predict_proba(self, images_: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 pixels, or floats already in [0, 1] -> (N, 10) probabilities.

        Large batches go through model.predict (batch 1000) and agree with it exactly;
        small ones through the NumPy path where the model allows (within float rounding).
        """
        x = images_.astype("float32") / 255.0 if images_.dtype == np.uint8 else images_
        x = x.astype("float32", copy=False)
        if self._dense is not None and len(x) <= FAST_PATH_MAX_BATCH:
            return _dense_forward(self._dense, x)
        return np.asarray(self.model.predict(x, batch_size=PREDICT_BATCH_SIZE, verbose=0))

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
        self, paths: list[str | os.PathLike], min_confidence: float = 0.0
    ) -> list[tuple[Path, Prediction | UserError]]:
        """Each image file -> its Prediction, or the error that kept it from having one."""
        digits, results = [], []
        for path in map(Path, paths):
            try:
                digits.append(images.load_digit(path))
                results.append((path, None))
            except (images.ImageError, OSError) as e:
                error = e if isinstance(e, UserError) else images.ImageError(f"unreadable: {e}")
                results.append((path, error))
        answers = iter(self.predict_digits(np.array(digits), min_confidence) if digits else [])
        return [(path, error or next(answers)) for path, error in results]


def _dense_stack(model: keras.Model) -> list[tuple[np.ndarray, np.ndarray, str]] | None:
    """(kernel, bias, activation) per Dense layer, if the model is only Flatten, Dense and
    Dropout (a no-op at inference) with relu/softmax; otherwise None."""
    stack = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Dropout)):
            continue
        if not isinstance(layer, keras.layers.Dense):
            return None
        name = keras.activations.serialize(layer.activation)
        if name not in ("relu", "softmax", "linear"):
            return None
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
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

"""Predictor: a trained model loaded for inference, the one way code gets predictions."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from mnistlab import runs

MODEL_FILES = {"final": runs.FINAL_MODEL, "best": runs.BEST_MODEL}
PREDICT_BATCH_SIZE = 1000


class Predictor:
    """Class probabilities for MNIST-style 28x28 images."""

    def __init__(self, model: keras.Model, source: str):
        self.model = model
        self.source = source

    @classmethod
    def from_run(cls, run_dir: Path, which: str = "final") -> Predictor:
        """Load `final_model.keras` (early stopping's best val_loss) or `best_model.keras`."""
        if which not in MODEL_FILES:
            raise ValueError(f"unknown model {which!r}; choose from: {', '.join(MODEL_FILES)}")
        path = runs.require_finished(run_dir) / MODEL_FILES[which]
        return cls(keras.saving.load_model(path), str(path))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 pixels, or floats already in [0, 1] -> (N, 10) probabilities."""
        x = images.astype("float32") / 255.0 if images.dtype == np.uint8 else images
        return np.asarray(self.model.predict(x, batch_size=PREDICT_BATCH_SIZE, verbose=0))

"""export_run(config, data): a run's model in another format, checked against Keras.

Each export is written under a temporary name, run on the 10,000 test images, compared
with the Keras model, and only then renamed into place: a failed check leaves nothing.
"""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

import keras
import numpy as np

from mnistlab import progress, runs
from mnistlab.config import IMAGE_SHAPE, ExportConfig
from mnistlab.data import Mnist, scale
from mnistlab.errors import UserError
from mnistlab.metrics import measure
from mnistlab.predictor import Predictor

SUFFIXES = {"onnx": ".onnx", "keras": ".keras", "h5": ".h5", "savedmodel": ".savedmodel"}
# A float export may differ from Keras by rounding only.
FLOAT_TOLERANCE = 1e-4
CALIBRATION_IMAGES = 1000
# A SavedModel check runs the test set in this many batches.
SAVEDMODEL_BATCHES = 10


class ExportError(UserError, RuntimeError):
    """An export that cannot be made, or that does not compute what the Keras model does."""


def default_path(config: ExportConfig) -> Path:
    return Path(config.run) / runs.EXPORTS / f"{config.model}{SUFFIXES[config.format]}"


def export_run(config: ExportConfig, data: Mnist) -> dict[str, typing.Any]:
    """Write, check and record the export; returns the record (also saved as <file>.json)."""
    _require_packages(config)
    reference = Predictor.from_run(Path(config.run), config.model)
    x_test, y_test = data.x_test, data.y_test
    keras_test, expected = measure(reference, x_test, y_test)
    out = Path(config.out) if config.out else default_path(config)
    out.parent.mkdir(parents=True, exist_ok=True)

    with runs.atomic_path(out) as tmp:
        with progress.step(f"writing {config.format}"):
            _write(reference.model, config.format, tmp)
        with progress.step(f"checking it on {len(y_test):,} test digits"):
            export_test, got = measure(_load(tmp, config.format), x_test, y_test)
        difference = float(np.abs(got - expected).max())
        if not difference <= FLOAT_TOLERANCE:
            raise ExportError(
                f"the {config.format} export differs from Keras by up to {difference:.2e} "
                f"(allowed {FLOAT_TOLERANCE:g}); nothing was written"
            )
    record = {
        "config": config.to_dict(),
        "path": str(out),
        "bytes": _size(out),
        "max_abs_difference": difference,
        "keras_accuracy": keras_test["accuracy"],
        "export_accuracy": export_test["accuracy"],
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
    }
    if config.quantize:
        quantized = runs.int8_path(out)
        with runs.atomic_path(quantized) as tmp:
            with progress.step(f"quantizing ({config.quantize})"):
                _quantize(out, tmp, config.quantize, data)
            with progress.step("checking the int8 model"):
                int8_test, got_int8 = measure(Predictor.from_onnx(tmp), x_test, y_test)
        record["int8"] = {
            "path": str(quantized),
            "method": config.quantize,
            "bytes": _size(quantized),
            "size_ratio": _size(out) / _size(quantized),
            "accuracy": int8_test["accuracy"],
            "max_abs_difference": float(np.abs(got_int8 - expected).max()),
        }
    runs.write_json(runs.export_record_path(out), record)
    return record


def summary(record: dict[str, typing.Any]) -> str:
    """What `mnistlab export` prints about an export record."""
    fmt = record["config"]["format"]
    lines = [
        f"wrote {record['path']} ({record['bytes'] / 1e6:.2f} MB)",
        f"max |p_export - p_keras| = {record['max_abs_difference']:.2e}; test accuracy: "
        f"keras {record['keras_accuracy']:.4f}, {fmt} {record['export_accuracy']:.4f}",
    ]
    if "int8" in record:
        q = record["int8"]
        change = (q["accuracy"] - record["keras_accuracy"]) * 100
        lines.append(
            f"wrote {q['path']} ({q['bytes'] / 1e6:.2f} MB, {q['size_ratio']:.2f}x smaller); "
            f"test accuracy {q['accuracy']:.4f} ({change:+.2f} points)"
        )
    return "\n".join(lines)


# Packages each format needs, by Keras backend (ONNX Runtime runs the check).
_NEEDS = {
    ("onnx", "jax"): ("jax2onnx", "onnx", "onnxruntime"),
    ("onnx", "tensorflow"): ("tf2onnx", "onnxruntime"),
    ("onnx", "torch"): ("onnxscript", "onnxruntime"),
    ("savedmodel", "jax"): ("tensorflow",),
    ("savedmodel", "tensorflow"): ("tensorflow",),
    ("savedmodel", "torch"): ("tensorflow",),
}


def _require_packages(config: ExportConfig) -> None:
    needed = _NEEDS.get((config.format, keras.backend.backend()), ())
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"format {config.format} on the {keras.backend.backend()} backend needs "
            f"{' and '.join(missing)}: pip install {' '.join(missing)}"
        )


def _write(model: keras.Model, fmt: str, path: Path) -> None:
    if fmt in ("keras", "h5"):
        model.save(path)
        return
    model(np.zeros((1, *IMAGE_SHAPE), np.float32))  # Keras exports only a model that was called
    if fmt == "onnx":
        import onnx

        model.export(str(path), format="onnx", verbose=False)
        # jax2onnx moves tensors over 1 MB to a .data file beside, named after the temporary
        # file; one self-contained file is what a deployment wants (and can be renamed).
        onnx.save_model(onnx.load(path), path)
        path.with_name(f"{path.name}.data").unlink(missing_ok=True)
    else:
        model.export(str(path), format="tf_saved_model", verbose=False)


def _load(path: Path, fmt: str) -> Predictor:
    if fmt == "onnx":
        return Predictor.from_onnx(path)
    if fmt in ("keras", "h5"):
        return Predictor.from_keras_file(path)
    return _SavedModel(path)


class _SavedModel:
    """A TF SavedModel's serving function, with predict_proba like a Predictor."""

    def __init__(self, path: Path):
        import tensorflow as tf

        self.serve = tf.saved_model.load(str(path)).serve

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = scale(x)
        return np.concatenate(
            [np.asarray(self.serve(batch)) for batch in np.array_split(x, SAVEDMODEL_BATCHES)]
        )


def _quantize(source: Path, target: Path, method: str, data: Mnist) -> None:
    from onnxruntime import quantization
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # ONNX Runtime's recommended first step: shape inference and graph optimisation.
    prepared = target.with_name(f"{target.name}.prepared.onnx")
    try:
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        _quantize_prepared(quantization, prepared, target, method, data)
    finally:
        prepared.unlink(missing_ok=True)


def _quantize_prepared(quantization, source: Path, target: Path, method: str, data: Mnist) -> None:
    if method == "int8":
        quantization.quantize_dynamic(source, target, weight_type=quantization.QuantType.QInt8)
        return
    rng = np.random.default_rng(0)
    rows = rng.choice(len(data.x_train), CALIBRATION_IMAGES, replace=False)
    images = scale(data.x_train[rows])
    name = Predictor.from_onnx(source).session.get_inputs()[0].name

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter(images[i : i + 100] for i in range(0, len(images), 100))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}

    quantization.quantize_static(source, target, Calibration(), per_channel=True)


def _size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size

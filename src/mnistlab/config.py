"""One frozen dataclass per command, and the named presets. Standard library only."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass

from mnistlab.errors import UserError

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# constant: learning_rate throughout; cosine: cosine decay to 1% over all epochs; onecycle:
# linear warm-up from 1/25 for the first 20% of steps, then cosine decay to 1%; plateau:
# halved whenever val_loss has not improved for 2 epochs.
LR_SCHEDULES = ("constant", "cosine", "onecycle", "plateau")
PADDINGS = ("valid", "same")
# Which model file of a run: final_model.keras (best val_loss) or best_model.keras.
MODELS = ("final", "best")
# What runs a model for prediction: Keras, or ONNX Runtime on the run's ONNX export.
ENGINES = ("keras", "onnx")
# Each conv block halves the side: 28 -> 13 -> 5 -> 1 with 3x3 valid convolutions, 28 -> 14
# -> 7 -> 3 with same padding.
MAX_CONV_BLOCKS = 3


class ConfigError(UserError, ValueError):
    """A configuration a user wrote (CLI options or a config.json) that cannot be used."""


def _require(checks: list[tuple[bool, str]]) -> None:
    """Raise the message of the first failed (ok, message) check."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _one_of(name: str, value: str, choices: typing.Iterable[str]) -> tuple[bool, str]:
    """A check that `value` is one of `choices`; its message lists them."""
    return value in choices, f"unknown {name} {value!r}; choose from: {', '.join(choices)}"


def _per_layer(value: float | tuple[float, ...], layers: int, name: str) -> tuple[float, ...]:
    if isinstance(value, tuple):
        if len(value) != layers:
            raise ConfigError(f"{name} has {len(value)} values for {layers} hidden layers")
        return value
    return (value,) * layers


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what `mnistlab train` produces; saved as config.json in each run.

    The defaults are the reference deep MLP of the notebook this project replaces.
    """

    preset: str = "deep-mlp"
    # Filters of each Conv2D 3x3 ReLU + MaxPool 2x2 block before the Dense layers; none
    # for an MLP.
    conv_filters: tuple[int, ...] = ()
    conv_padding: str = "valid"
    # Width of each hidden Dense ReLU layer, input side first.
    hidden_units: tuple[int, ...] = (512, 256, 128)
    # Dropout after each hidden layer (one value for all, or one per layer); 0: no Dropout.
    dropout: float | tuple[float, ...] = 0.3
    # L2 penalty on each hidden kernel (one value for all, or one per layer); 0: none.
    l2: float | tuple[float, ...] = 0.0
    # BatchNormalization between each conv or hidden Dense and its ReLU.
    batch_norm: bool = False
    optimizer: str = "adam"
    # The peak learning rate of a schedule.
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    epochs: int = 50
    batch_size: int = 128
    # The last fraction of the training images is held out, as Keras' validation_split does.
    validation_split: float = 0.2
    # Early stopping on val_loss; best weights are restored.
    patience: int = 5
    seed: int = 0
    # Train on the first `limit` training images only (the tiny mode for smoke tests).
    limit: int | None = None
    # Training steps per compiled call: amortises Python dispatch (see benchmarks/epoch_speed.py).
    steps_per_execution: int = 75
    # Random distortions of every training batch (mnistlab.augment); never at inference.
    augment: bool = False
    # Also write final_model.h5 (legacy HDF5) next to final_model.keras.
    save_h5: bool = False

    def __post_init__(self) -> None:
        _check_types(self)
        checks = [
            (len(self.hidden_units) > 0, "hidden_units needs at least one layer"),
            (all(f > 0 for f in self.conv_filters), "conv_filters must all be positive"),
            (len(self.conv_filters) <= MAX_CONV_BLOCKS, "at most 3 conv blocks fit 28x28"),
            _one_of("conv_padding", self.conv_padding, PADDINGS),
            (all(u > 0 for u in self.hidden_units), "hidden_units must all be positive"),
            (
                all(0.0 <= d < 1.0 for d in self.layer_dropout),
                f"dropout must be in [0, 1), got {self.dropout}",
            ),
            (all(v >= 0.0 for v in self.layer_l2), f"l2 must be >= 0, got {self.l2}"),
            _one_of("optimizer", self.optimizer, OPTIMIZERS),
            (self.learning_rate > 0.0, f"learning_rate must be > 0, got {self.learning_rate}"),
            _one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (
                0.0 < self.validation_split < 1.0,
                f"validation_split must be in (0, 1), got {self.validation_split}",
            ),
            (self.patience >= 0, f"patience must be >= 0, got {self.patience}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.limit is None or self.limit > 1, f"limit must be > 1, got {self.limit}"),
            (self.steps_per_execution > 0, "steps_per_execution must be > 0"),
        ]
        _require(checks)

    @property
    def layer_dropout(self) -> tuple[float, ...]:
        return _per_layer(self.dropout, len(self.hidden_units), "dropout")

    @property
    def layer_l2(self) -> tuple[float, ...]:
        return _per_layer(self.l2, len(self.hidden_units), "l2")

    def to_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, typing.Any]) -> TrainConfig:
        """Rebuild a config from JSON; unknown keys and wrong types are errors, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        # JSON has no tuples; everything else must already have the right type.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)


def _check_types(config: typing.Any) -> None:
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not _is_instance(value, hints[field.name]):
            raise ConfigError(
                f"{field.name} must be of type {_type_name(hints[field.name])}, got {value!r}"
            )


def _is_instance(value: typing.Any, tp: typing.Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, arg) for arg in typing.get_args(tp))
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(tp)
        return isinstance(value, tuple) and all(_is_instance(v, item) for v in value)
    if tp is type(None):
        return value is None
    # bool is an int subclass, but True is never a sensible epoch count.
    if isinstance(value, bool):
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(value, tp)


def _type_name(tp: typing.Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


SAMPLERS = ("tpe", "random", "gp", "grid")
PRUNERS = ("median", "hyperband", "none")


@dataclass(frozen=True)
class TuneConfig:
    """What `mnistlab tune` searches; saved in the study folder as study.json."""

    preset: str = "deep-mlp"
    # The study is done when it holds this many finished (complete or pruned) trials,
    # counted over every worker that shares it.
    trials: int = 20
    # Trainings per trial (seeds seed, seed+1, ...); the objective is their mean.
    repeats: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    # Most epochs of each training in the search (early stopping still applies).
    epochs: int = 20
    study: str = "deep-mlp-search"
    # SQLAlchemy URL; None means a SQLite file in the study folder.
    storage: str | None = None
    timeout: float | None = None
    limit: int | None = None
    # Sampler seed; None draws one, so that workers sharing a study explore differently.
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        checks = [
            (self.trials > 0, f"trials must be > 0, got {self.trials}"),
            (self.repeats > 0, f"repeats must be > 0, got {self.repeats}"),
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            _one_of("sampler", self.sampler, SAMPLERS),
            _one_of("pruner", self.pruner, PRUNERS),
            (self.preset in PRESETS, f"unknown preset {self.preset!r}"),
            (self.timeout is None or self.timeout > 0, "timeout must be > 0"),
            (self.limit is None or self.limit > 1, f"limit must be > 1, got {self.limit}"),
            (bool(self.study.strip()), "the study needs a name"),
        ]
        _require(checks)

    def to_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EnsembleConfig:
    """What `mnistlab ensemble` assembles; saved as the ensemble run's config.json."""

    # Finished run folders whose class probabilities are averaged.
    members: tuple[str, ...]
    # Which model file of each member.
    model: str = "final"
    preset: str = "ensemble"

    def __post_init__(self) -> None:
        _check_types(self)
        _require(
            [
                (len(self.members) >= 2, "an ensemble needs at least two runs"),
                (len(set(self.members)) == len(self.members), "a run is listed twice"),
                _one_of("model", self.model, MODELS),
            ]
        )

    def to_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)


EXPORT_FORMATS = ("onnx", "keras", "h5", "savedmodel")
# int8: ONNX Runtime's dynamic quantization (weights int8, activations quantized on the
# fly); int8-static: activations too, calibrated on training images.
QUANTIZATIONS = ("int8", "int8-static")


@dataclass(frozen=True)
class ExportConfig:
    """What `mnistlab export` writes; saved beside the export as <file>.json."""

    run: str
    format: str = "onnx"
    model: str = "final"
    quantize: str | None = None
    # Where to write; None means RUN/exports/<model>.<format's suffix>.
    out: str | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        _require(
            [
                _one_of("format", self.format, EXPORT_FORMATS),
                _one_of("model", self.model, MODELS),
                _one_of("quantize", self.quantize or QUANTIZATIONS[0], QUANTIZATIONS),
                (
                    self.quantize is None or self.format == "onnx",
                    "--quantize works on ONNX exports only: add --format onnx",
                ),
            ]
        )

    def to_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ServeConfig:
    """What `mnistlab serve` serves and how."""

    # A run folder, or an .onnx file.
    run: str
    model: str = "final"
    engine: str = "keras"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Larger bodies get 413 before they are read: a phone photo fits, a flood does not.
    max_body_bytes: int = 8_000_000
    # Most images in one model call of the inference thread, which merges concurrent
    # requests (a TF Serving request holds up to 256); 1: every request its own call.
    max_batch: int = 256
    # A request must arrive whole (headers and body) within this many seconds, or its
    # connection is closed; an idle keep-alive connection is closed after keep_alive.
    request_timeout_seconds: float = 30.0
    keep_alive_seconds: int = 5

    def __post_init__(self) -> None:
        _check_types(self)
        _require(
            [
                _one_of("model", self.model, MODELS),
                _one_of("engine", self.engine, ENGINES),
                (0 < self.port < 65536, f"port must be in 1..65535, got {self.port}"),
                (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
                (self.max_body_bytes >= 1, "max_body_bytes must be positive"),
                (self.max_batch >= 1, f"max_batch must be >= 1, got {self.max_batch}"),
                (self.request_timeout_seconds > 0, "request_timeout_seconds must be > 0"),
                (self.keep_alive_seconds > 0, "keep_alive_seconds must be > 0"),
            ]
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        values = json.loads(text)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown serve config keys: {', '.join(unknown)}")
        return cls(**values)


PRESETS: dict[str, TrainConfig] = {
    "deep-mlp": TrainConfig(),
    "mlp-128": TrainConfig(preset="mlp-128", hidden_units=(128,), dropout=0.2, epochs=10),
    "mlp-l2": TrainConfig(
        preset="mlp-l2", hidden_units=(128, 64), dropout=0.2, l2=0.01, epochs=20, batch_size=64
    ),
    "mlp-512x2": TrainConfig(
        preset="mlp-512x2", hidden_units=(512, 512), dropout=0.0, epochs=20, batch_size=32
    ),
    # The reference MLP on distorted batches: learns slower, so more epochs and patience.
    "deep-mlp-aug": TrainConfig(preset="deep-mlp-aug", augment=True, epochs=100, patience=10),
    # The published article's CNN: Conv2D 32 3x3, MaxPool 2x2, Dense 128, Dense 10.
    "cnn-basic": TrainConfig(
        preset="cnn-basic", conv_filters=(32,), hidden_units=(128,), dropout=0.0, epochs=10
    ),
    # A CNN sized for a CPU (about 2 MFLOP per image): BN, augmentation and a one-cycle
    # schedule over a fixed 30 epochs, hence no early stop; 10% held out for validation.
    "cnn": TrainConfig(
        preset="cnn",
        conv_filters=(16, 32, 64),
        conv_padding="same",
        hidden_units=(128,),
        dropout=0.3,
        batch_norm=True,
        augment=True,
        learning_rate=3e-3,
        lr_schedule="onecycle",
        epochs=30,
        patience=30,
        validation_split=0.1,
    ),
}


def preset_config(name: str, **overrides: typing.Any) -> TrainConfig:
    """The preset `name` with some fields replaced; None values mean 'keep the preset's'."""
    _require([_one_of("preset", name, PRESETS)])
    return override(PRESETS[name], **overrides)


def override(config: TrainConfig, **overrides: typing.Any) -> TrainConfig:
    """`config` with the fields given a value replaced; None means 'keep'."""
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})

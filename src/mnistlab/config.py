"""One frozen dataclass per command, and the named presets. Standard library only."""

from __future__ import annotations

import dataclasses
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
# What final_model.keras holds: best, the weights of the lowest val_loss (early stopping
# restores them); last, the last epoch's, for a schedule that anneals to the end.
FINAL_WEIGHTS = ("best", "last")
# Which model file of a run: final_model.keras (see FINAL_WEIGHTS) or best_model.keras.
MODELS = ("final", "best")
# What runs a model for prediction: Keras, or ONNX Runtime on the run's ONNX export.
ENGINES = ("keras", "onnx")
# Each conv block halves the side: 28 -> 13 -> 5 -> 1 with 3x3 valid convolutions, 28 -> 14
# -> 7 -> 3 with same padding.
MAX_CONV_BLOCKS = 3
# MNIST images and classes (data.py and every reader of them take these from here).
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# The most digits one image may hold: more is not a number (mnistlab read, POST /read).
MAX_DIGITS = 64


class ConfigError(UserError, ValueError):
    """A configuration a user wrote (CLI options or a config.json) that cannot be used."""


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise the message of the first failed (ok, message) check."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def one_of(name: str, value: str, choices: typing.Iterable[str]) -> tuple[bool, str]:
    """A check that `value` is one of `choices`; its message lists them."""
    return value in choices, f"unknown {name} {value!r}; choose from: {', '.join(choices)}"


def _per_layer(value: float | tuple[float, ...], layers: int, name: str) -> tuple[float, ...]:
    if isinstance(value, tuple):
        if len(value) != layers:
            raise ConfigError(f"{name} has {len(value)} values for {layers} hidden layers")
        return value
    return (value,) * layers


def option(
    default: typing.Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: typing.Iterable[str] | typing.Callable[[], typing.Iterable[str]] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
) -> typing.Any:
    """A config field with what a user reads about it, said once: its help, its choices,
    its command-line flag (default --field-name; none with cli=False). A field without a
    default is a positional argument."""
    metadata = {"help": help, "choices": choices, "flag": flag, "metavar": metavar, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a field: its own, else --field-name."""
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def choices_of(field: dataclasses.Field) -> tuple[str, ...] | None:
    choices = field.metadata.get("choices")
    return tuple(choices() if callable(choices) else choices) if choices else None


class _Config:
    """What every command's config does: check its field types, and go to and from JSON."""

    def to_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: typing.Any) -> typing.Self:
        """Rebuild a config from JSON; unknown keys and wrong types are errors, not ignored."""
        if not isinstance(values, dict):
            raise ConfigError(f"a {cls.__name__} is a JSON object, got {values!r}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        # JSON has no tuples; everything else must already have the right type.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        try:
            return cls(**values)
        except TypeError as e:  # a required field missing
            raise ConfigError(f"{cls.__name__}: {e}") from None


@dataclass(frozen=True)
class TrainConfig(_Config):
    """Everything that decides what `mnistlab train` produces; saved as config.json in each run.

    The defaults are the reference deep MLP of the notebook this project replaces.
    """

    preset: str = option("deep-mlp", "model preset", choices=lambda: tuple(PRESETS))
    conv_filters: tuple[int, ...] = option(
        (), "filters of each Conv2D 3x3 ReLU + 2x2 max-pool block before the Dense layers; "
        "none for an MLP", cli=False,
    )  # fmt: skip
    conv_padding: str = option("valid", "padding of the convolutions", choices=PADDINGS, cli=False)
    hidden_units: tuple[int, ...] = option(
        (512, 256, 128), "width of each hidden Dense ReLU layer, input side first", cli=False
    )
    dropout: float | tuple[float, ...] = option(
        0.3, "Dropout after each hidden layer (one value for all, or one per layer); 0: none",
        cli=False,
    )  # fmt: skip
    l2: float | tuple[float, ...] = option(
        0.0, "L2 penalty on each hidden kernel (one value for all, or one per layer)", cli=False
    )
    batch_norm: bool = option(
        False, "BatchNormalization between each conv or hidden Dense and its ReLU", cli=False
    )
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS, cli=False)
    learning_rate: float = option(1e-3, "learning rate, the peak of a schedule")
    lr_schedule: str = option(
        "constant",
        "constant; cosine decay; onecycle (warm-up then cosine decay); plateau (halve when "
        "val_loss stalls 2 epochs)",
        choices=LR_SCHEDULES,
    )
    epochs: int = option(50, "most epochs")
    batch_size: int = option(128, "batch size")
    validation_split: float = option(
        0.2, "last fraction of the training images held out, as Keras' validation_split does"
    )
    patience: int = option(5, "early-stopping patience on val_loss")
    final_weights: str = option(
        "best",
        "what final_model.keras holds: best, the weights of the epoch of lowest val_loss; "
        "last, the last epoch's (for a schedule that anneals to its end, judged on few "
        "held-out images)",
        choices=FINAL_WEIGHTS,
    )
    seed: int = option(0, "random seed")
    limit: int | None = option(
        None, "train on the first N training images only (default: all; the tiny mode)"
    )
    steps_per_execution: int = option(
        75, "training steps per compiled call: amortises Python dispatch "
        "(benchmarks/epoch_speed.py)", cli=False,
    )  # fmt: skip
    augment: bool = option(
        False,
        "distort every training batch: shifts, rotation, scale, shear, elastic, stroke width, "
        "binarisation (seeded; never at inference)",
    )
    augment_strength: float = option(
        1.0,
        "scale of --augment's distortions (shifts, angles, elastic displacement, stroke-change "
        "rates): 0.5 halves them; milder members mixed with full-strength ones make better "
        "cnn ensembles",
    )
    save_h5: bool = option(False, "also save final_model.h5 (legacy HDF5 format)", flag="--h5")

    def __post_init__(self) -> None:
        _check_types(self)
        checks = [
            (len(self.hidden_units) > 0, "hidden_units needs at least one layer"),
            (all(f > 0 for f in self.conv_filters), "conv_filters must all be positive"),
            (len(self.conv_filters) <= MAX_CONV_BLOCKS, "at most 3 conv blocks fit 28x28"),
            one_of("conv_padding", self.conv_padding, PADDINGS),
            (all(u > 0 for u in self.hidden_units), "hidden_units must all be positive"),
            (
                all(0.0 <= d < 1.0 for d in self.layer_dropout),
                f"dropout must be in [0, 1), got {self.dropout}",
            ),
            (all(v >= 0.0 for v in self.layer_l2), f"l2 must be >= 0, got {self.l2}"),
            one_of("optimizer", self.optimizer, OPTIMIZERS),
            (self.learning_rate > 0.0, f"learning_rate must be > 0, got {self.learning_rate}"),
            one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (
                0.0 < self.validation_split < 1.0,
                f"validation_split must be in (0, 1), got {self.validation_split}",
            ),
            (self.patience >= 0, f"patience must be >= 0, got {self.patience}"),
            one_of("final_weights", self.final_weights, FINAL_WEIGHTS),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.limit is None or self.limit > 1, f"limit must be > 1, got {self.limit}"),
            (self.steps_per_execution > 0, "steps_per_execution must be > 0"),
            (
                0.0 < self.augment_strength <= 1.0,
                f"augment_strength must be in (0, 1], got {self.augment_strength}",
            ),
            (
                self.augment or self.augment_strength == 1.0,
                "augment_strength needs augment (--augment on the command line, "
                "or a preset that augments)",
            ),
        ]
        require(checks)

    @property
    def layer_dropout(self) -> tuple[float, ...]:
        return _per_layer(self.dropout, len(self.hidden_units), "dropout")

    @property
    def layer_l2(self) -> tuple[float, ...]:
        return _per_layer(self.l2, len(self.hidden_units), "l2")


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
SPACES = ("default", "seed")
_MODEL_HELP = (
    "final_model.keras (best val_loss, or the last epoch's: the run's final_weights) or "
    "best_model.keras (best val_accuracy)"
)
_ENGINE_HELP = (
    "keras, or onnx: ONNX Runtime on the run's ONNX export (an .onnx file is always run with onnx)"
)


@dataclass(frozen=True)
class TuneConfig(_Config):
    """What `mnistlab tune` searches; saved in the study folder as study.json."""

    preset: str = option("deep-mlp", "base preset", choices=lambda: tuple(PRESETS))
    trials: int = option(
        20,
        "finished (complete or pruned) trials the study should hold, counted over every "
        "worker that shares it",
    )
    repeats: int = option(1, "trainings per trial (seeds seed, seed+1, ...), averaged")
    space: str = option(
        "default",
        "search space: default (no hopeless region), or seed (the published notebook's, "
        "with plain SGD and L2 up to 1.0)",
        choices=SPACES,
    )
    sampler: str = option("tpe", "Optuna sampler", choices=SAMPLERS)
    pruner: str = option("median", "Optuna pruner", choices=PRUNERS)
    epochs: int = option(20, "most epochs per training (early stopping still applies)")
    study: str | None = option(None, "study name (default: <preset>-search)")
    storage: str | None = option(
        None,
        "SQLAlchemy URL, e.g. postgresql://user@host/db (default: a SQLite file in the "
        "study folder)",
    )
    timeout: float | None = option(None, "stop starting trials after this many seconds")
    limit: int | None = option(None, "use the first N training images (default: all)")
    seed: int | None = option(
        None, "sampler seed (default: random, so that workers sharing a study explore "
        "differently)",
    )  # fmt: skip
    jobs: int | None = option(
        None, "worker processes on this machine sharing the study (default: 2 where there "
        "are 2 cores or more: one trains while the other compiles its next trial)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        _check_types(self)
        if self.study is None:
            object.__setattr__(self, "study", f"{self.preset}-search")
        checks = [
            (self.trials > 0, f"trials must be > 0, got {self.trials}"),
            (self.repeats > 0, f"repeats must be > 0, got {self.repeats}"),
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            one_of("sampler", self.sampler, SAMPLERS),
            one_of("pruner", self.pruner, PRUNERS),
            one_of("space", self.space, SPACES),
            one_of("preset", self.preset, PRESETS),
            (self.timeout is None or self.timeout > 0, "timeout must be > 0"),
            (self.limit is None or self.limit > 1, f"limit must be > 1, got {self.limit}"),
            (self.jobs is None or self.jobs > 0, f"jobs must be > 0, got {self.jobs}"),
            (bool(str(self.study).strip()), "the study needs a name"),
        ]
        require(checks)


@dataclass(frozen=True)
class EnsembleConfig(_Config):
    """What `mnistlab ensemble` assembles; saved as the ensemble run's config.json."""

    members: tuple[str, ...] = option(
        help="finished run folders whose class probabilities are averaged", metavar="RUN"
    )
    model: str = option("final", f"which model of each run: {_MODEL_HELP}", choices=MODELS)

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                (len(self.members) >= 2, "an ensemble needs at least two runs"),
                (len(set(self.members)) == len(self.members), "a run is listed twice"),
                one_of("model", self.model, MODELS),
            ]
        )


PRUNE_METHODS = ("magnitude", "units")
UNIT_SCORES = ("l1", "activation")
# What each method removes when --sparsity is not given.
DEFAULT_SPARSITY = {"magnitude": 0.9, "units": 0.75}


@dataclass(frozen=True)
class PruneConfig(_Config):
    """What `mnistlab prune` makes of a finished run; saved in the pruned run's config.json."""

    run: str = option(help="finished run folder to prune (not an ensemble)", metavar="RUN")
    method: str = option(
        "magnitude", "magnitude: the smallest weights set to zero, gradually while fine-tuning "
        "(unstructured: same shapes, smaller compressed); units: the least important hidden "
        "units and conv filters removed and the model rebuilt smaller (faster)",
        choices=PRUNE_METHODS,
    )  # fmt: skip
    sparsity: float | None = option(
        None, "fraction removed: of the weights (magnitude, default "
        f"{DEFAULT_SPARSITY['magnitude']}) or of each hidden layer's units and filters "
        f"(units, default {DEFAULT_SPARSITY['units']})",
    )  # fmt: skip
    score: str = option(
        "activation", "units: a unit's importance: activation (its mean |activation| on "
        "training images times the L1 norm of its outgoing weights) or l1 (the L1 norm of "
        "its incoming weights)", choices=UNIT_SCORES,
    )  # fmt: skip
    epochs: int = option(
        10, "fine-tuning epochs; magnitude raises the sparsity over the first half of them; "
        "early stopping on val_loss after that",
    )  # fmt: skip
    learning_rate: float | None = option(
        None, "fine-tuning learning rate (default: the run's own for units, a tenth of it for "
        "magnitude)",
    )  # fmt: skip
    seed: int = option(0, "random seed")

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                one_of("method", self.method, PRUNE_METHODS),
                one_of("score", self.score, UNIT_SCORES),
                (
                    self.sparsity is None or 0 < self.sparsity < 1,
                    f"sparsity must be between 0 and 1 (exclusive), got {self.sparsity}",
                ),
                (self.epochs >= 1, "epochs must be >= 1"),
                (
                    self.learning_rate is None or self.learning_rate > 0,
                    "learning_rate must be > 0",
                ),
            ]
        )

    @property
    def target(self) -> float:
        return DEFAULT_SPARSITY[self.method] if self.sparsity is None else self.sparsity


EXPORT_FORMATS = ("onnx", "keras", "h5", "savedmodel")
# int8: ONNX Runtime's dynamic quantization (weights int8, activations quantized on the
# fly); int8-static: activations too, calibrated on training images.
QUANTIZATIONS = ("int8", "int8-static")


@dataclass(frozen=True)
class ExportConfig(_Config):
    """What `mnistlab export` writes; saved beside the export as <file>.json."""

    run: str = option(help="finished run folder")
    format: str = option(
        "onnx", "onnx, keras (.keras), h5 (legacy HDF5) or savedmodel (TensorFlow)",
        choices=EXPORT_FORMATS,
    )  # fmt: skip
    model: str = option("final", _MODEL_HELP, choices=MODELS)
    quantize: str | None = option(
        None,
        "int8: dynamic quantization; int8-static: activations too, calibrated on 1,000 "
        "training images (ONNX only)",
        choices=QUANTIZATIONS,
    )
    out: str | None = option(None, "file to write (default: RUN/exports/<model>.<format>)")

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                one_of("format", self.format, EXPORT_FORMATS),
                one_of("model", self.model, MODELS),
                one_of("quantize", self.quantize or QUANTIZATIONS[0], QUANTIZATIONS),
                (
                    self.quantize is None or self.format == "onnx",
                    "quantize works on ONNX exports only: export with format onnx",
                ),
            ]
        )


@dataclass(frozen=True)
class PredictConfig(_Config):
    """How `mnistlab predict` reads digits in image files."""

    run: str = option(help="run folder, or an .onnx file (mnistlab export)")
    model: str = option("final", _MODEL_HELP, choices=MODELS)
    engine: str = option("keras", _ENGINE_HELP, choices=ENGINES)
    top_k: int = option(3, "how many of the likeliest digits to show")
    min_confidence: float = option(
        0.0, "below this probability, answer 'unsure' instead of a digit"
    )

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                one_of("model", self.model, MODELS),
                one_of("engine", self.engine, ENGINES),
                (
                    1 <= self.top_k <= NUM_CLASSES,
                    f"top_k must be in 1..{NUM_CLASSES}, got {self.top_k}",
                ),
                (
                    0.0 <= self.min_confidence <= 1.0,
                    f"min_confidence must be in [0, 1], got {self.min_confidence}",
                ),
            ]
        )


@dataclass(frozen=True)
class ReadConfig(_Config):
    """How `mnistlab read` reads whole numbers (several digits on a line) in image files."""

    run: str = option(help="run folder")
    model: str = option("final", _MODEL_HELP, choices=MODELS)
    min_confidence: float | None = option(
        None,
        "below this estimated chance that the whole number is right, answer 'unsure' "
        "(default: the reader's calibrated threshold; 0 accepts every reading, 1 none)",
    )
    length: int | None = option(None, "the number of digits, when it is known (a ZIP code: 5)")

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                one_of("model", self.model, MODELS),
                (
                    self.min_confidence is None or 0.0 <= self.min_confidence <= 1.0,
                    f"min_confidence must be in [0, 1], got {self.min_confidence}",
                ),
                (
                    self.length is None or 1 <= self.length <= MAX_DIGITS,
                    f"length must be in 1..{MAX_DIGITS}, got {self.length}",
                ),
            ]
        )


@dataclass(frozen=True)
class AdaptConfig(_Config):
    """How `mnistlab adapt` fits a run's reader to labelled documents; saved with it."""

    run: str = option(help="run folder (or a reader adapt wrote, to adapt it further)")
    folder: str = option(help="folder of the labelled images")
    labels: str | None = option(
        None, "CSV with the columns filename,label (default: FOLDER/labels.csv)"
    )
    model: str = option("final", _MODEL_HELP, choices=MODELS)
    hold_out: float = option(
        0.25,
        "share of the labelled images kept out of training, to measure on and to set "
        "the threshold with",
    )
    epochs: int = option(30, "passes over the training images")
    seed: int = option(0, "which images are held out, and the training's order")

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                one_of("model", self.model, MODELS),
                (0.0 < self.hold_out < 1.0, f"hold_out must be in (0, 1), got {self.hold_out}"),
                (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            ]
        )


@dataclass(frozen=True)
class ServeConfig(_Config):
    """What `mnistlab serve` serves and how."""

    run: str = option(help="run folder, or an .onnx file (mnistlab export)")
    model: str = option("final", _MODEL_HELP, choices=MODELS)
    engine: str = option("keras", _ENGINE_HELP, choices=ENGINES)
    host: str = option(
        "127.0.0.1",
        "address to listen on. The default, loopback, serves this machine only; 0.0.0.0 "
        "exposes the server to every network this machine is on, with no authentication "
        "or TLS: do that only behind a proxy you trust",
    )
    port: int = option(8000, "TCP port")
    workers: int = option(1, "server processes")
    access_log: bool = option(False, "print one line per request (uvicorn's access log)")
    max_body_bytes: int = option(
        8_000_000,
        "larger bodies get 413 before they are read: a phone photo fits, a flood does not",
        cli=False,
    )
    max_batch: int = option(
        256,
        "most images in one model call; concurrent requests are merged up to this (a TF "
        "Serving request holds up to 256; 1: one call per request)",
    )
    request_timeout_seconds: float = option(
        30.0,
        "seconds a client has to send a whole request (headers and body) before its "
        "connection is closed",
        flag="--request-timeout",
        metavar="SECONDS",
    )
    keep_alive_seconds: int = option(
        5, "an idle keep-alive connection is closed after this many seconds", cli=False
    )

    def __post_init__(self) -> None:
        _check_types(self)
        require(
            [
                one_of("model", self.model, MODELS),
                one_of("engine", self.engine, ENGINES),
                (0 < self.port < 65536, f"port must be in 1..65535, got {self.port}"),
                (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
                (self.max_body_bytes >= 1, "max_body_bytes must be positive"),
                (self.max_batch >= 1, f"max_batch must be >= 1, got {self.max_batch}"),
                (self.request_timeout_seconds > 0, "request_timeout_seconds must be > 0"),
                (self.keep_alive_seconds > 0, "keep_alive_seconds must be > 0"),
            ]
        )


def _augmented_one_cycle(peak: float, epochs: int) -> dict[str, typing.Any]:
    """Freshly distorted batches and a one-cycle schedule over a fixed number of epochs:
    the schedule, not early stopping, ends training, so the final model keeps the annealed
    last epoch (measured as good or better than the lowest val_loss, a choice made on
    held-out noise); 10% is held out for validation."""
    return dict(
        augment=True,
        learning_rate=peak,
        lr_schedule="onecycle",
        epochs=epochs,
        patience=epochs,
        final_weights="last",
        validation_split=0.1,
    )


PRESETS: dict[str, TrainConfig] = {
    "deep-mlp": TrainConfig(),
    "mlp-128": TrainConfig(preset="mlp-128", hidden_units=(128,), dropout=0.2, epochs=10),
    "mlp-l2": TrainConfig(
        preset="mlp-l2", hidden_units=(128, 64), dropout=0.2, l2=0.01, epochs=20, batch_size=64
    ),
    "mlp-512x2": TrainConfig(
        preset="mlp-512x2", hidden_units=(512, 512), dropout=0.0, epochs=20, batch_size=32
    ),
    # The reference MLP on distorted batches; the distortions regularise, so less dropout.
    "deep-mlp-aug": TrainConfig(
        preset="deep-mlp-aug", dropout=0.2, **_augmented_one_cycle(peak=2e-3, epochs=60)
    ),
    # The published article's CNN: Conv2D 32 3x3, MaxPool 2x2, Dense 128, Dense 10.
    "cnn-basic": TrainConfig(
        preset="cnn-basic", conv_filters=(32,), hidden_units=(128,), dropout=0.0, epochs=10
    ),
    # A CNN sized for a CPU (about 2 MFLOP per image), with BatchNorm.
    "cnn": TrainConfig(
        preset="cnn",
        conv_filters=(16, 32, 64),
        conv_padding="same",
        hidden_units=(128,),
        dropout=0.3,
        batch_norm=True,
        **_augmented_one_cycle(peak=3e-3, epochs=30),
    ),
}


def preset_config(name: str, **overrides: typing.Any) -> TrainConfig:
    """The preset `name` with some fields replaced; None values mean 'keep the preset's'."""
    require([one_of("preset", name, PRESETS)])
    preset = PRESETS[name]
    # Where the schedule, not early stopping, ends training (patience = epochs), it still
    # does with other epochs: else `--epochs 50` stops a 30-patience run mid-schedule.
    if preset.patience == preset.epochs and overrides.get("patience") is None:
        overrides = {**overrides, "patience": overrides.get("epochs")}
    return override(preset, **overrides)


def override(config: TrainConfig, **overrides: typing.Any) -> TrainConfig:
    """`config` with the fields given a value replaced; None means 'keep'."""
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown TrainConfig fields: {', '.join(unknown)}; "
            f"the fields are: {', '.join(sorted(known))}"
        )
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})

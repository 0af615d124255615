"""What a study searches: the spaces of hyperparameters, and a trial's TrainConfig."""

from __future__ import annotations

import dataclasses
import typing

import optuna

from mnistlab.config import PRESETS, TrainConfig, TuneConfig

MAX_LAYERS = 4


@dataclasses.dataclass(frozen=True)
class Space:
    """What a study searches: 1 to MAX_LAYERS hidden layers, and these ranges."""

    units: tuple[int, int, int]  # low, high, step
    dropout: tuple[float, float, float]
    l2: tuple[float, ...]
    optimizers: tuple[str, ...]
    learning_rate: tuple[float, float]  # log-uniform
    batch_sizes: tuple[int, ...] = (64, 128, 256)


SPACES = {
    # No hopeless region: every point trains to well above chance (the seed's space lost
    # trials to plain SGD and to L2 0.1 and 1.0, which score below it): better models in
    # the same time (benchmarks/tune_speed.py --compare spaces).
    "default": Space(
        units=(64, 512, 64), dropout=(0.1, 0.5, 0.1), l2=(0.0, 1e-5, 1e-4),
        optimizers=("adam", "rmsprop"), learning_rate=(3e-4, 3e-3),
    ),
    # The seed's: the published Keras Tuner notebook's space, extended.
    "seed": Space(
        units=(32, 512, 32), dropout=(0.1, 0.5, 0.1), l2=(0.0, 0.01, 0.1, 1.0),
        optimizers=("adam", "sgd", "rmsprop"), learning_rate=(1e-4, 3e-3),
    ),
}  # fmt: skip
# The grid sampler cannot walk the whole space; it walks this small one instead.
GRID = {
    "n_layers": [1, 2, 3],
    "units_0": [128, 256, 512],
    "units_1": [128, 256],
    "units_2": [128],
    "dropout_0": [0.2, 0.3],
    "dropout_1": [0.3],
    "dropout_2": [0.3],
    "l2_0": [0.0],
    "l2_1": [0.0],
    "l2_2": [0.0],
    "optimizer": ["adam"],
    "learning_rate": [1e-3],
    "batch_size": [128],
}


def suggest_config(trial: optuna.Trial, base: TrainConfig, space: str = "default") -> TrainConfig:
    """The base config with every searched field drawn from the trial."""
    s = SPACES[space]
    n_layers = trial.suggest_int("n_layers", 1, MAX_LAYERS)
    layers = range(n_layers)
    units = tuple(trial.suggest_int(f"units_{i}", *s.units[:2], step=s.units[2]) for i in layers)
    dropout = tuple(
        round(trial.suggest_float(f"dropout_{i}", *s.dropout[:2], step=s.dropout[2]), 2)
        for i in layers
    )
    l2 = tuple(float(trial.suggest_categorical(f"l2_{i}", s.l2)) for i in layers)
    return dataclasses.replace(
        base,
        preset=f"{base.preset}-tuned",
        hidden_units=units,
        dropout=dropout,
        l2=l2,
        optimizer=trial.suggest_categorical("optimizer", s.optimizers),
        learning_rate=trial.suggest_float("learning_rate", *s.learning_rate, log=True),
        batch_size=int(trial.suggest_categorical("batch_size", s.batch_sizes)),
    )


def config_from_params(
    params: dict[str, typing.Any], base: TrainConfig, space: str = "default"
) -> TrainConfig:
    """Rebuild a trial's TrainConfig from its stored parameters."""
    return suggest_config(optuna.trial.FixedTrial(params), base, space)


def base_config(config: TuneConfig) -> TrainConfig:
    """The preset the study searches around, trained as the search trains."""
    return dataclasses.replace(PRESETS[config.preset], epochs=config.epochs, limit=config.limit)

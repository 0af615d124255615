"""train(config, data, run_dir) -> a finished Run, its folder written as runs.py says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from mnistlab import runs
from mnistlab.augment import augment_batch
from mnistlab.callbacks import (
    AtomicModelCheckpoint,
    EpochSeeds,
    HistoryFile,
    ResumableEarlyStopping,
    TensorBoardLogger,
)
from mnistlab.config import TrainConfig
from mnistlab.data import Mnist, scale, split_validation
from mnistlab.metrics import measure
from mnistlab.models import build_model
from mnistlab.predictor import Predictor

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


def learning_rate(
    config: TrainConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's learning rate: a per-step schedule over all `config.epochs`, or a
    constant (plateau adjusts a constant from a callback)."""
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total, alpha=0.01)
    if config.lr_schedule == "onecycle":
        warmup = int(0.2 * total)
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate / 25, total - warmup, alpha=0.01,
            warmup_target=config.learning_rate, warmup_steps=warmup,
        )  # fmt: skip
    return config.learning_rate


# Most validation images per model call; see validation_batch_size.
VALIDATION_BATCH = 1000


def validation_batch_size(images: int, batch_size: int) -> int:
    """The largest batch up to VALIDATION_BATCH that splits the validation images evenly,
    or `batch_size` where none as large as it does.

    A short last batch is a second shape, so a second compiled program: 0.2 s of every
    training and tuning trial. Left to itself, Keras also validates 32 images at a time
    when it trains from a PyDataset, as the augmented presets do.
    """
    for size in range(min(images, VALIDATION_BATCH), batch_size - 1, -1):
        if images % size == 0:
            return size
    return batch_size


class AugmentedBatches(keras.utils.PyDataset):
    """Training batches, shuffled and freshly distorted every epoch.

    Each batch's randomness comes from (seed, epoch, batch): reproducible, and the same
    whatever order or thread the batches are made in. EpochSeeds sets the epoch.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, strength: float):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.strength = strength
        self.set_epoch(0)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return augment_batch(self.x[rows], rng, self.strength), self.y[rows]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = np.random.default_rng((self.seed, epoch)).permutation(len(self.x))


def fit(
    config: TrainConfig,
    data: Mnist,
    callbacks: list,
    verbose: int | str = 0,
    model: keras.Model | None = None,
) -> keras.Model:
    """Seed, build (or take `model`, to fine-tune it), compile and fit on the training
    split; validate on the held-out tail.

    The test images are not touched here: searches use this and must never see them.
    """
    keras.utils.set_random_seed(config.seed)
    limit = config.limit or len(data.x_train)
    # Integer labels with the sparse loss: the same numbers as one-hot, without the copy.
    x, y = scale(data.x_train[:limit]), data.y_train[:limit]
    (x_train, y_train), validation = split_validation(x, y, config.validation_split)
    model = build_model(config) if model is None else model
    steps_per_epoch = -(-len(x_train) // config.batch_size)
    if config.lr_schedule == "plateau":
        # First, so that a resumable backup (last) saves the learning rate it set.
        callbacks = [
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=2, min_lr=config.learning_rate / 100
            ),
            *callbacks,
        ]
    model.compile(
        optimizer=OPTIMIZERS[config.optimizer](learning_rate(config, steps_per_epoch)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Never more steps per call than an epoch has (a tiny run's bar would read 75/32).
        steps_per_execution=min(config.steps_per_execution, steps_per_epoch),
    )
    validation_batch = validation_batch_size(len(validation[0]), config.batch_size)
    if config.augment:
        batches = AugmentedBatches(
            x_train, y_train, config.batch_size, config.seed, config.augment_strength
        )
        callbacks = [EpochSeeds(config.seed, batches), *callbacks]
        model.fit(batches, validation_data=validation, epochs=config.epochs,
                  validation_batch_size=validation_batch, callbacks=callbacks,
                  verbose=verbose)  # fmt: skip
    else:
        callbacks = [EpochSeeds(config.seed), *callbacks]
        model.fit(x_train, y_train, validation_data=validation, epochs=config.epochs,
                  batch_size=config.batch_size, validation_batch_size=validation_batch,
                  callbacks=callbacks, verbose=verbose)  # fmt: skip
    return model


def fit_and_validate(
    config: TrainConfig, data: Mnist, on_epoch_end: Callable[[int, dict], None] | None = None
) -> list[dict[str, float]]:
    """Train with early stopping and no artifacts; the per-epoch logs (for searches).

    `on_epoch_end(epoch, logs)` sees every epoch and may raise to stop (e.g. to prune).
    """
    history = keras.callbacks.History()
    callbacks = [
        history,
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
    ]
    if on_epoch_end is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end))
    fit(config, data, callbacks)
    keys = list(history.history)
    return [
        dict(zip(keys, values, strict=True))
        for values in zip(*history.history.values(), strict=True)
    ]


def _final_epoch(config: TrainConfig, history: list[dict]) -> int:
    """The epoch (1-based) whose weights final_model.keras holds."""
    if config.final_weights == "last":
        return history[-1]["epoch"]
    return min(history, key=lambda r: r["val_loss"])["epoch"]


def train(config: TrainConfig, data: Mnist, run_dir: Path, verbose: int | str = "auto") -> runs.Run:
    """Train, checkpoint and test one model; resume if `run_dir` holds an unfinished run.

    The run folder is locked meanwhile: a second process gets a RunError, not a share.
    The Run returned holds the model just trained.
    """
    with runs.locked(run_dir):
        model = _train(config, data, Path(run_dir), verbose)
    run = runs.open_run(run_dir)
    vars(run)["model"] = model  # Run.model's cache: no need to load what is in memory
    return run


def _train(config: TrainConfig, data: Mnist, run_dir: Path, verbose: int | str) -> keras.Model:
    record = runs.run_record(config, data.source, data.sha256, keras.backend.backend())
    runs.start(run_dir, record)
    history_path = run_dir / runs.HISTORY
    done = runs.read_json(history_path) if history_path.is_file() else []
    callbacks = [
        HistoryFile(history_path),
        TensorBoardLogger(run_dir / runs.TENSORBOARD),
        AtomicModelCheckpoint(
            run_dir / runs.BEST_MODEL,
            monitor="val_accuracy",
            save_best_only=True,
            # After a restart, only beat what the earlier epochs already saved.
            initial_value_threshold=max((r["val_accuracy"] for r in done), default=None),
        ),
        ResumableEarlyStopping(
            run_dir / runs.EARLY_STOPPING_STATE,
            monitor="val_loss",
            patience=config.patience,
            restore_best_weights=config.final_weights == "best",
        ),
        # Last, so that every other callback's state for an epoch is on disk before the
        # backup says that epoch is done. Two copies: a kill mid-write leaves the older one.
        keras.callbacks.BackupAndRestore(
            str(run_dir / runs.BACKUP), double_checkpoint=True, delete_checkpoint=False
        ),
    ]
    model = fit(config, data, callbacks, verbose)

    # The model now holds the weights config.final_weights names (EarlyStopping restored
    # the lowest val_loss's, or left the last epoch's).
    with runs.atomic_path(run_dir / runs.FINAL_MODEL) as tmp:
        model.save(tmp)
    if config.save_h5:
        with runs.atomic_path(run_dir / runs.FINAL_MODEL_H5) as tmp:
            model.save(tmp)

    test, _ = measure(Predictor(str(run_dir / runs.FINAL_MODEL), model), data.x_test, data.y_test)
    history = runs.read_json(history_path)
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "epochs_run": len(history),
        # Epoch (1-based) whose weights final_model.keras holds.
        "best_epoch": _final_epoch(config, history),
        # Epoch whose weights best_model.keras holds: highest val_accuracy.
        "checkpoint_epoch": max(history, key=lambda r: r["val_accuracy"])["epoch"],
        "best_val_accuracy": max(r["val_accuracy"] for r in history),
        "training_seconds": sum(r["seconds"] for r in history),
    }
    runs.finish(run_dir, metrics)
    return model

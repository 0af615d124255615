"""Small Keras callbacks for what Keras' own ones do not cover.

Each resets its state in on_train_begin so that one instance can serve several fits.
"""

from __future__ import annotations

import json
import time
import typing
from pathlib import Path

import keras
import numpy as np
from tensorboardX import SummaryWriter

from mnistlab import runs

# The variable that holds a keras.random.SeedGenerator's state (Dropout has one).
SEED_STATE = "seed_generator_state"


class TensorBoardLogger(keras.callbacks.Callback):
    """Epoch scalars and weight histograms, with tensorboardX (Keras' own callback needs TF).

    Writes `train/` and `validation/` subfolders with the same tags, as Keras' TensorBoard
    callback does, so TensorBoard overlays the two curves in one chart.
    """

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers: dict[str, SummaryWriter] = {}

    def on_train_begin(self, logs=None):
        self._writers = {
            split: SummaryWriter(str(self.log_dir / split)) for split in ("train", "validation")
        }

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        # The rate the optimizer will use next (a schedule's or the plateau's), as Keras'
        # callback logs it: so that schedules can be seen.
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs = {**(logs or {}), "learning_rate": rate}
        for name, value in logs.items():
            split, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self._writers[split].add_scalar(f"epoch_{tag}", float(value), step)
        for weight in self.model.weights:
            self._writers["train"].add_histogram(
                weight.path, keras.ops.convert_to_numpy(weight.value), step
            )
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()


class EpochSeeds(keras.callbacks.Callback):
    """Seed each epoch's randomness from (seed, epoch): the shuffle, every Dropout layer's
    draws and the augmentation of `batches`.

    Whatever ran before, an epoch then trains the same, so a run resumed after a kill
    continues exactly as the uninterrupted run would have (BackupAndRestore restores the
    weights and the optimizer, not the random state).
    """

    def __init__(self, seed: int, batches: typing.Any = None):
        super().__init__()
        self.seed, self.batches = seed, batches

    def on_epoch_begin(self, epoch, logs=None):
        shuffle, dropout = np.random.SeedSequence([self.seed, epoch]).spawn(2)
        # Keras shuffles arrays with NumPy's global generator when the epoch's data starts.
        np.random.seed(shuffle.generate_state(1)[0])
        generators = [v for v in self.model.variables if v.path.endswith(SEED_STATE)]
        seeds = dropout.generate_state(len(generators))
        for generator, seed in zip(generators, seeds, strict=True):
            generator.assign(np.array([seed, 0], dtype=generator.dtype))  # (seed, draws so far)
        if self.batches is not None:
            self.batches.set_epoch(epoch)


class HistoryFile(keras.callbacks.Callback):
    """Per-epoch logs and seconds in history.json, rewritten atomically after every epoch.

    Keras' History lives in memory and starts empty when a killed run resumes; this file
    keeps the earlier epochs. Rows at or after the resumed epoch are dropped, since the
    run was killed before their backup was complete and they are trained again.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.rows = runs.read_json(self.path) if self.path.is_file() else []
        self._trimmed = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._trimmed:
            self.rows = [row for row in self.rows if row["epoch"] <= epoch]
            self._trimmed = True
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = time.perf_counter() - self._start
        self.rows.append(row)
        runs.write_json(self.path, self.rows)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that saves to a temporary file and renames it into place.

    Keras writes the .keras zip in place, so a kill mid-save would destroy the best model.
    """

    def __init__(self, filepath: Path, **kwargs):
        self.final_path = Path(filepath)
        super().__init__(str(runs.partial_path(self.final_path)), **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        partial = Path(self.filepath)
        try:
            super().on_epoch_end(epoch, logs)
        except BaseException:
            partial.unlink(missing_ok=True)  # half-written: never left to fill a disk
            raise
        if partial.exists():
            partial.replace(self.final_path)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience count and best weights survive a killed run.

    BackupAndRestore restores only the model and the epoch; plain EarlyStopping would
    start counting afresh and forget the best weights it is meant to restore.
    """

    def __init__(self, state_dir: Path, **kwargs):
        super().__init__(**kwargs)
        self.state_dir = Path(state_dir)

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def _weights_file(self) -> Path:
        return self.state_dir / "best.weights.npz"

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self._state_file.is_file():
            return
        state = json.loads(self._state_file.read_text())
        self.best, self.wait, self.best_epoch = state["best"], state["wait"], state["best_epoch"]
        if self.restore_best_weights and self._weights_file.is_file():
            with np.load(self._weights_file) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.best is None:  # The monitored value was missing; nothing to keep.
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.restore_best_weights and self.best_epoch == epoch:
            with runs.atomic_path(self._weights_file) as tmp:
                np.savez(tmp, *self.best_weights)
        state = {"best": float(self.best), "wait": self.wait, "best_epoch": self.best_epoch}
        runs.write_json(self._state_file, state)

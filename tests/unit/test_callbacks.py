"""The custom callbacks, driven by scripted logs or a tiny model on synthetic data."""

import keras
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnistlab import runs
from mnistlab.callbacks import (
    AtomicModelCheckpoint,
    HistoryFile,
    ResumableEarlyStopping,
    TensorBoardLogger,
)


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    return model


def drive(callback, model, val_losses, first_epoch=0):
    """Feed scripted val_loss values; the weights of epoch e are all equal to e."""
    callback.set_model(model)
    model.stop_training = False  # as fit() does
    callback.on_train_begin()
    stopped_at = None
    for epoch, val_loss in enumerate(val_losses, start=first_epoch):
        model.set_weights([np.full(w.shape, float(epoch)) for w in model.get_weights()])
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
        if model.stop_training:
            stopped_at = epoch
            break
    callback.on_train_end()
    return stopped_at


# val_loss per epoch: best at epoch 1, then no improvement.
VAL_LOSSES = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch(tmp_path):
    model = tiny_model()
    callback = ResumableEarlyStopping(tmp_path / "es", patience=3, restore_best_weights=True)
    assert drive(callback, model, VAL_LOSSES) == 4
    assert np.all(model.get_weights()[0] == 1.0)


def test_early_stopping_state_survives_a_restart(tmp_path):
    state = tmp_path / "es"
    model = tiny_model()
    first = ResumableEarlyStopping(state, patience=3, restore_best_weights=True)
    first.set_model(model)
    first.on_train_begin()
    for epoch, val_loss in enumerate(VAL_LOSSES[:3]):  # killed after epoch index 2
        model.set_weights([np.full(w.shape, float(epoch)) for w in model.get_weights()])
        first.on_epoch_end(epoch, {"val_loss": val_loss})

    restarted = tiny_model()
    second = ResumableEarlyStopping(state, patience=3, restore_best_weights=True)
    # Same stopping epoch as without the kill, and the best weights come from before it.
    assert drive(second, restarted, VAL_LOSSES[3:], first_epoch=3) == 4
    assert np.all(restarted.get_weights()[0] == 1.0)


def test_a_new_fit_without_state_starts_afresh(tmp_path):
    model = tiny_model()
    callback = ResumableEarlyStopping(tmp_path / "es", patience=1, restore_best_weights=True)
    assert drive(callback, model, [1.0, 2.0, 3.0]) == 1
    (tmp_path / "es" / "state.json").unlink()
    assert drive(callback, model, [3.0, 2.0, 1.0]) is None


def test_history_file_keeps_earlier_epochs_and_drops_the_repeated_one(tmp_path):
    path = tmp_path / runs.HISTORY
    first = HistoryFile(path)
    first.on_train_begin()
    for epoch in range(3):
        first.on_epoch_begin(epoch)
        first.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    # Killed after epoch 3 was logged but before its backup: the restart redoes epoch 3.
    second = HistoryFile(path)
    second.on_train_begin()
    second.on_epoch_begin(2)
    second.on_epoch_end(2, {"loss": 0.25})
    rows = runs.read_json(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["loss"] for r in rows] == [1.0, 0.5, 0.25]
    assert all(r["seconds"] >= 0 for r in rows)


def fit_tiny(callbacks, epochs=2):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 3))
    model = tiny_model()
    model.fit(x, y, validation_data=(x, y), epochs=epochs, callbacks=callbacks, verbose=0)
    return model


def test_tensorboard_events_are_readable_by_tensorboard(tmp_path):
    model = fit_tiny([TensorBoardLogger(tmp_path)], epochs=3)
    train = EventAccumulator(str(tmp_path / "train"), size_guidance={"histograms": 0})
    train.Reload()
    validation = EventAccumulator(str(tmp_path / "validation"))
    validation.Reload()
    assert [e.step for e in train.Scalars("epoch_loss")] == [1, 2, 3]
    assert [e.step for e in validation.Scalars("epoch_loss")] == [1, 2, 3]
    assert sorted(train.Tags()["histograms"]) == sorted(w.path for w in model.weights)
    kernel = train.Histograms(model.get_layer("dense").kernel.path)
    assert [h.step for h in kernel] == [1, 2, 3]
    assert kernel[0].histogram_value.num == 12  # a 4x3 kernel


def test_checkpoint_is_renamed_into_place_and_loadable(tmp_path):
    target = tmp_path / "best.keras"
    fit_tiny([AtomicModelCheckpoint(target, monitor="val_loss", save_best_only=True)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
    assert keras.saving.load_model(target).get_layer("dense").units == 3


def test_checkpoint_threshold_from_an_earlier_run_is_respected(tmp_path):
    target = tmp_path / "best.keras"
    callback = AtomicModelCheckpoint(
        target, monitor="val_loss", save_best_only=True, initial_value_threshold=-1.0
    )
    fit_tiny([callback])  # mse is never below -1, so nothing beats the earlier best
    assert not target.exists()

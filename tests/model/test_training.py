"""Real trainings on real MNIST through the CLI, as a user runs them."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnistlab import runs
from mnistlab.config import PRESETS
from mnistlab.data import scale
from mnistlab.predictor import Predictor

ACCURACY_BAR = 0.98


def test_default_preset_reaches_the_accuracy_bar(default_run):
    run_dir, stdout = default_run
    metrics = runs.read_json(run_dir / runs.METRICS)
    assert metrics["test_accuracy"] >= ACCURACY_BAR
    assert stdout.strip().endswith(
        f"test_accuracy={metrics['test_accuracy']:.4f} "
        f"test_loss={metrics['test_loss']:.4f} run={run_dir}"
    )


def test_early_stopping_and_the_final_model_holds_the_best_val_loss_weights(default_run, mnist):
    run_dir, _ = default_run
    config = PRESETS["deep-mlp"]
    history = runs.read_json(run_dir / runs.HISTORY)
    metrics = runs.read_json(run_dir / runs.METRICS)
    best = min(history, key=lambda r: r["val_loss"])
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    assert metrics["epochs_run"] == len(history)
    assert metrics["best_epoch"] == best["epoch"]
    if len(history) < config.epochs:  # stopped early: exactly `patience` epochs after the best
        assert len(history) == best["epoch"] + config.patience
    x_val, y_val = scale(mnist.x_train[48000:]), mnist.y_train[48000:]
    final = keras.saving.load_model(run_dir / runs.FINAL_MODEL)
    val = final.evaluate(x_val, y_val, batch_size=1000, verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(best["val_loss"], abs=1e-4)
    x_test, y_test = scale(mnist.x_test), mnist.y_test
    test = final.evaluate(x_test, y_test, batch_size=1000, verbose=0, return_dict=True)
    assert test["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


# The best-val_accuracy checkpoint is not the model the 98% promise is about (that is the
# final, best-val_loss one): over seeds 0-5 its test accuracy was 97.96-98.31% (mean
# 98.13%, the same before and after per-epoch seeding), so 98% would be a coin toss.
BEST_CHECKPOINT_BAR = 0.975


def test_best_checkpoint_loads_with_plain_keras(default_run, mnist):
    run_dir, _ = default_run
    metrics = runs.read_json(run_dir / runs.METRICS)
    through_mnistlab = Predictor.from_run(run_dir, "best").predict_proba(mnist.x_test)
    # A separate process that never imports mnistlab, as a user's own script would.
    script = f"""
import sys, numpy as np, keras
model = keras.saving.load_model({str(run_dir / runs.BEST_MODEL)!r})
with np.load({os.environ["MNISTLAB_DATA"]!r}) as d:
    x, y = d["x_test"] / 255.0, d["y_test"]
accuracy = float((model.predict(x, verbose=0).argmax(1) == y).mean())
print(accuracy, "mnistlab" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    accuracy, imported = result.stdout.split()
    assert imported == "False"
    assert float(accuracy) == pytest.approx((through_mnistlab.argmax(1) == mnist.y_test).mean())
    assert float(accuracy) >= BEST_CHECKPOINT_BAR
    history = runs.read_json(run_dir / runs.HISTORY)
    assert metrics["checkpoint_epoch"] == max(history, key=lambda r: r["val_accuracy"])["epoch"]


def test_artifacts_and_tensorboard_logs(default_run):
    run_dir, _ = default_run
    record = runs.read_json(run_dir / runs.CONFIG)
    history = runs.read_json(run_dir / runs.HISTORY)
    assert record["config"]["hidden_units"] == [512, 256, 128]
    assert record["backend"] == "jax"
    assert len(record["data_sha256"]) == 64
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert not (run_dir / runs.BACKUP).exists()
    assert not (run_dir / runs.EARLY_STOPPING_STATE).exists()
    events = EventAccumulator(
        str(run_dir / "tensorboard" / "train"), size_guidance={"histograms": 0}
    )
    events.Reload()
    assert len(events.Scalars("epoch_accuracy")) == len(history)
    # A kernel and a bias for each of the three hidden layers and the output layer.
    histograms = events.Tags()["histograms"]
    assert len(histograms) == 8
    assert all(len(events.Histograms(tag)) == len(history) for tag in histograms)
    rates = [e.value for e in events.Scalars("epoch_learning_rate")]
    assert rates == pytest.approx([1e-3] * len(history))  # the preset's constant rate


def test_a_schedule_is_seen_in_tensorboard_epoch_by_epoch(cli, tmp_path):
    result = cli("train", "--quiet", "--limit", 3000, "--epochs", 3, "--lr-schedule", "cosine",
                 "--run-dir", tmp_path / "r")  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard" / "train"))
    events.Reload()
    rates = [e.value for e in events.Scalars("epoch_learning_rate")]
    # Cosine decay from 1e-3 to 1e-5 over the 3 epochs: read after each epoch.
    expected = [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * k / 3)) for k in (1, 2, 3)]
    assert rates == pytest.approx(expected, rel=1e-3)


def test_final_weights_last_keeps_the_last_epoch_not_the_lowest_val_loss(cli, mnist, tmp_path):
    # A high constant rate on 3,000 images: val_loss is lowest before the last epoch.
    common = ("train", "--quiet", "--limit", 3000, "--epochs", 8, "--patience", 10,
              "--learning-rate", 0.01, "--seed", 3)  # fmt: skip
    finals = {}
    for which in ("best", "last"):
        run_dir = tmp_path / which
        result = cli(*common, "--final-weights", which, "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        history = runs.read_json(run_dir / runs.HISTORY)
        metrics = runs.read_json(run_dir / runs.METRICS)
        final = keras.saving.load_model(run_dir / runs.FINAL_MODEL)
        val = final.evaluate(scale(mnist.x_train[2400:3000]), mnist.y_train[2400:3000],
                             batch_size=600, verbose=0, return_dict=True)  # fmt: skip
        finals[which] = (history, metrics, val["loss"])
    (history, best, best_loss), (same_history, last, last_loss) = finals["best"], finals["last"]
    assert [r["val_loss"] for r in history] == [r["val_loss"] for r in same_history]
    lowest = min(history, key=lambda r: r["val_loss"])
    assert lowest["epoch"] < 8  # the case this test is about
    assert best["best_epoch"] == lowest["epoch"]
    assert best_loss == pytest.approx(lowest["val_loss"], abs=1e-4)
    assert last["best_epoch"] == 8
    assert last_loss == pytest.approx(history[-1]["val_loss"], abs=1e-4)
    assert last["test_accuracy"] != best["test_accuracy"]


def tiny_training(cli, run_dir, seed):
    result = cli("train", "--quiet", "--limit", 6000, "--epochs", 2, "--seed", seed,
                 "--run-dir", run_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return runs.read_json(run_dir / runs.METRICS), runs.read_json(run_dir / runs.HISTORY)


def test_same_seed_same_result(cli, tmp_path):
    first, first_history = tiny_training(cli, tmp_path / "a", seed=7)
    second, second_history = tiny_training(cli, tmp_path / "b", seed=7)
    other, _ = tiny_training(cli, tmp_path / "c", seed=8)
    assert f"{first['test_accuracy']:.4f}" == f"{second['test_accuracy']:.4f}"
    assert first["test_loss"] == second["test_loss"]
    assert [r["val_loss"] for r in first_history] == [r["val_loss"] for r in second_history]
    assert other["test_loss"] != first["test_loss"]  # the seed is really used


def backed_up_epochs(run_dir):
    try:
        return json.loads((run_dir / runs.BACKUP / "training_metadata.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not yet, or mid-write
        return 0


def test_a_run_killed_after_epoch_2_resumes_at_epoch_3_and_finishes(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "mnistlab", "train", "--epochs", "4", "--patience", "10",
               "--run-dir", str(run_dir)]  # fmt: skip
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while backed_up_epochs(run_dir) < 2:
        assert victim.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # an epoch on 48,000 images takes > 1 s: still in epoch 3
    victim.wait()
    assert not runs.is_finished(run_dir)
    assert [r["epoch"] for r in runs.read_json(run_dir / runs.HISTORY)] == [1, 2]

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "resuming the interrupted run" in result.stderr
    epochs_shown = [line for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs_shown == ["Epoch 3/4", "Epoch 4/4"]
    assert [r["epoch"] for r in runs.read_json(run_dir / runs.HISTORY)] == [1, 2, 3, 4]
    assert runs.read_json(run_dir / runs.METRICS)["epochs_run"] == 4
    assert not (run_dir / runs.BACKUP).exists()


def test_the_progress_bar_counts_the_steps_of_an_epoch_in_a_tiny_run(terminal, tmp_path):
    # 4,000 training images in batches of 128: 32 steps, fewer than steps_per_execution.
    text = terminal("train", "--epochs", 2, "--limit", 5000, "--run-dir", tmp_path / "r")
    counts = {tuple(map(int, m)) for m in re.findall(r"(\d+)/(\d+) ━", text)}
    assert counts, text
    assert all(done <= total for done, total in counts), counts  # never "75/32"
    assert (32, 32) in counts


@pytest.mark.parametrize("augment", [False, True])
def test_validation_needs_one_compiled_program(mnist, caplog, augment):
    """400 validation images at batches of 128 (or Keras' 32 for batches it does not
    make) end in a short batch: a second program to compile in every trial of a search."""
    import jax

    from mnistlab.config import TrainConfig
    from mnistlab.training import fit_and_validate

    if keras.backend.backend() != "jax":
        pytest.skip("counts JAX's compilations")
    config = TrainConfig(epochs=1, limit=2000, augment=augment, seed=3)
    with caplog.at_level("WARNING"), jax.log_compiles():
        logs = fit_and_validate(config, mnist)
    compiled = [r.getMessage() for r in caplog.records if "jit(test_step)" in r.getMessage()]
    assert len([m for m in compiled if m.startswith("Compiling")]) == 1, compiled
    assert 0.5 < logs[0]["val_accuracy"] <= 1.0


def test_validation_batches_split_the_images_evenly():
    from mnistlab.training import validation_batch_size

    assert validation_batch_size(12000, 128) == 1000  # the default 20% of 60,000
    assert validation_batch_size(1200, 128) == 600  # 2%, as the long `cnn` runs hold out
    assert validation_batch_size(400, 32) == 400
    assert validation_batch_size(10007, 128) == 128  # a prime: no even split worth having
    assert validation_batch_size(20, 128) == 128

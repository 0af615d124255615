"""Hostile model files, damaged run folders, two processes on one run, kill -9 and resume:
each a clear line and exit code 2, or a result equal to the undisturbed one."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from mnistlab import runs
from mnistlab.predictor import Predictor

EXIT_USAGE = 2


def digit_png(tmp_path, mnist):
    path = tmp_path / "digit.png"
    Image.fromarray(255 - mnist.x_test[0]).save(path)
    return path


def run_with_model(tmp_path, source_run, build) -> "os.PathLike":
    """A copy of a real finished run whose final model is replaced by build(path)."""
    run_dir = tmp_path / "run"
    shutil.copytree(source_run, run_dir)
    build(run_dir / runs.FINAL_MODEL)
    return run_dir


def save(model):
    return lambda path: model.save(path)


def sequential(*layers, shape=(28, 28)):
    return keras.Sequential([keras.Input(shape=shape), *layers])


def lambda_model(path):
    model = sequential(keras.layers.Flatten(), keras.layers.Lambda(lambda x: x * 2),
                       keras.layers.Dense(10, activation="softmax"))  # fmt: skip
    model.save(path)


def truncated(path):
    sequential(keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")).save(path)
    path.write_bytes(path.read_bytes()[:200])


BAD_MODELS = {
    "takes-10": (save(sequential(keras.layers.Dense(10, activation="softmax"), shape=(10,))),
                 "not an MNIST classifier"),
    "gives-5": (save(sequential(keras.layers.Flatten(), keras.layers.Dense(5))),
                "not an MNIST classifier"),
    "empty": (lambda path: path.write_bytes(b""), "not a .keras model"),
    "truncated": (truncated, "not a .keras model"),
    "lambda": (lambda_model, "Lambda"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_a_bad_keras_model_is_one_line_naming_the_file(cli, tmp_path, tiny_runs, mnist, kind):
    build, message = BAD_MODELS[kind]
    run_dir = run_with_model(tmp_path, tiny_runs[0], build)
    result = cli("predict", run_dir, digit_png(tmp_path, mnist))
    assert result.returncode == EXIT_USAGE
    (line,) = result.stderr.strip().splitlines()
    assert str(run_dir / runs.FINAL_MODEL) in line and message in line


@pytest.mark.parametrize("kind", ["takes-10", "empty"])
def test_serve_refuses_a_bad_model_before_starting(cli, tmp_path, tiny_runs, kind):
    run_dir = run_with_model(tmp_path, tiny_runs[0], BAD_MODELS[kind][0])
    result = cli("serve", run_dir, "--port", "1", timeout=120)  # never reaches the bind
    assert result.returncode == EXIT_USAGE
    (line,) = result.stderr.strip().splitlines()
    assert BAD_MODELS[kind][1] in line


def test_dense_layers_without_bias_are_served_exactly(tmp_path, tiny_runs, mnist):
    model = sequential(keras.layers.Flatten(),
                       keras.layers.Dense(32, activation="relu", use_bias=False),
                       keras.layers.Dense(10, activation="softmax", use_bias=False))  # fmt: skip
    run_dir = run_with_model(tmp_path, tiny_runs[0], save(model))
    predictor = Predictor.from_run(run_dir)
    x = mnist.x_test[:100] / np.float32(255)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(predictor.predict_proba(x[:10]), expected[:10], atol=1e-6)
    np.testing.assert_allclose(predictor.predict_proba(x), expected, atol=1e-6)


@pytest.mark.parametrize("damaged", [runs.CONFIG, runs.METRICS])
@pytest.mark.parametrize("content", ["{not json", '{"unexpected": 1}'], ids=["text", "keys"])
def test_a_damaged_run_file_is_one_line_and_hides_no_other_run(
    cli, tmp_path, tiny_runs, damaged, content
):
    root = tmp_path / "runs"
    good, bad = root / "good", root / "bad"
    shutil.copytree(tiny_runs[0], good)
    shutil.copytree(tiny_runs[1], bad)
    (bad / damaged).write_text(content)

    listed = cli("runs", "--root", root)
    assert listed.returncode == 0
    assert "good" in listed.stdout and "bad" not in listed.stdout
    assert f"skipped {bad / damaged}: damaged" in listed.stderr

    for command in (["evaluate", bad], ["serve", bad, "--port", "1"]):
        result = cli(*command, timeout=120)
        assert result.returncode == EXIT_USAGE, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"{bad / damaged}: damaged" in line


def test_an_unwritable_place_is_one_line_naming_it(cli, tmp_path, tiny_runs):
    """As root, a read-only folder is writable; a file where a folder must go is not."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run_dir)
    shutil.rmtree(run_dir / runs.FIGURES, ignore_errors=True)
    (run_dir / runs.FIGURES).write_text("in the way")
    result = cli("evaluate", run_dir)
    assert result.returncode == EXIT_USAGE
    (line,) = result.stderr.strip().splitlines()
    assert str(run_dir / runs.FIGURES) in line


def test_a_run_dir_that_is_a_file_is_one_line(cli, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    result = cli("train", "--limit", 500, "--epochs", 1, "--run-dir", path)
    assert result.returncode == EXIT_USAGE
    assert (
        result.stderr.strip() == f"mnistlab: error: {path} is a file, not a run folder; "
        "choose another run folder"
    )
    assert path.read_text() == "mine"


def backed_up_epochs(run_dir):
    try:
        return json.loads((run_dir / runs.BACKUP / "training_metadata.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not yet, or mid-write
        return 0


def train_command(run_dir, *options):
    return [sys.executable, "-m", "mnistlab", "train", "--quiet", "--limit", "20000",
            "--patience", "20", "--run-dir", str(run_dir), *map(str, options)]  # fmt: skip


def kill_after_epoch(command, run_dir, epoch):
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while backed_up_epochs(run_dir) < epoch:
        assert victim.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not runs.is_finished(run_dir)


def test_a_second_training_of_one_run_is_refused_until_the_first_is_gone(tmp_path):
    run_dir = tmp_path / "run"
    command = train_command(run_dir, "--epochs", 8)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / runs.CONFIG).is_file():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert second.returncode == EXIT_USAGE
        assert second.stderr.strip() == (
            f"mnistlab: error: {run_dir} is being trained by PID {first.pid}"
        )
    finally:
        first.send_signal(signal.SIGKILL)  # its lock dies with it
        first.wait()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert runs.read_json(run_dir / runs.METRICS)["epochs_run"] == 8


def test_a_killed_and_resumed_run_equals_the_uninterrupted_one(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    options = ("--epochs", 5)
    result = subprocess.run(train_command(whole, *options), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    kill_after_epoch(train_command(broken, *options), broken, epoch=2)
    result = subprocess.run(train_command(broken, *options), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    def curves(run_dir):
        history = runs.read_json(run_dir / runs.HISTORY)
        return np.array([[r[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")]
                         for r in history])  # fmt: skip

    np.testing.assert_allclose(curves(broken), curves(whole), rtol=1e-5)
    metrics = [runs.read_json(d / runs.METRICS) for d in (whole, broken)]
    assert metrics[0]["test_accuracy"] == metrics[1]["test_accuracy"]
    assert metrics[0]["test_loss"] == pytest.approx(metrics[1]["test_loss"], rel=1e-5)

"""`mnistlab prune` end to end: real prunes of the real default run on real MNIST, the
pruned runs used by the other commands and served on loopback, and every bad input."""

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import keras
import numpy as np
import pytest

from mnistlab import runs
from mnistlab.predictor import Predictor


@pytest.fixture(scope="module")
def pruned(default_run, tmp_path_factory):
    """The default run pruned both ways (units briefly): {method: (run folder, stdout)}."""
    parent, _ = default_run
    root = tmp_path_factory.mktemp("pruned")
    made = {}
    for method, options in (("magnitude", []), ("units", ["--epochs", "4"])):
        result = subprocess.run(
            [sys.executable, "-m", "mnistlab", "prune", parent, "--method", method, *options,
             "--quiet", "--out", root / method],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        made[method] = (root / method, result.stdout)
    return made


def test_magnitude_prune_zeroes_nine_weights_in_ten_and_keeps_the_accuracy(pruned, default_run):
    run_dir, stdout = pruned["magnitude"]
    parent = runs.open_run(default_run[0])
    m = runs.read_json(run_dir / runs.METRICS)
    assert m["test_accuracy"] >= parent.metrics["test_accuracy"] - 0.002  # the accuracy bar
    assert m["parent_test_accuracy"] == parent.metrics["test_accuracy"]
    assert m["sparsity"] == pytest.approx(0.9, abs=0.001)
    assert m["xz_bytes_after"] * 5 <= m["xz_bytes_before"]
    assert m["parameters_after"] == m["parameters_before"]  # same shapes, zeros inside
    model = keras.saving.load_model(run_dir / runs.FINAL_MODEL)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    kernels = [layer.get_weights()[0] for layer in dense]
    assert [k.shape for k in kernels] == [(784, 512), (512, 256), (256, 128), (128, 10)]
    zeros = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
    assert zeros == pytest.approx(m["sparsity"], abs=1e-6)
    assert (kernels[-1] != 0).all()  # the output layer is left whole
    record = runs.read_json(run_dir / runs.CONFIG)
    assert record["pruned"]["parent"] == str(default_run[0])
    assert record["pruned"]["method"] == "magnitude"
    assert record["config"]["preset"] == "deep-mlp-pruned"
    assert stdout.splitlines()[-1] == (
        f"test_accuracy={m['test_accuracy']:.4f} test_loss={m['test_loss']:.4f} run={run_dir}"
    )
    assert stdout.splitlines()[0].startswith("magnitude: sparsity 0.900; nonzero parameters ")


def test_units_prune_rebuilds_a_narrower_model_that_keeps_most_of_the_accuracy(pruned, mnist):
    run_dir, _ = pruned["units"]
    m = runs.read_json(run_dir / runs.METRICS)
    assert m["test_accuracy"] >= 0.975  # the accuracy bar of a 4-epoch fine-tune
    config = runs.open_run(run_dir).config
    assert (config.hidden_units, config.dropout) == ((128, 64, 32), (0.075, 0.075, 0.075))
    assert m["parameters_after"] < m["parameters_before"] / 4
    # Sizes are of the weights alone: compressed, never more than their float32 bytes
    # (the narrow model's own file also holds its trained optimizer state).
    assert m["xz_bytes_after"] <= 4 * m["parameters_after"]
    assert m["xz_bytes_before"] <= 4 * m["parameters_before"]
    predictor = Predictor.from_run(run_dir)
    assert predictor._dense is not None  # the NumPy fast path serves it
    got = predictor.predict_proba(mnist.x_test[:500]).argmax(axis=1)
    assert np.mean(got == mnist.y_test[:500]) >= 0.97


def test_pruned_runs_are_evaluated_ensembled_and_served_like_any_run(
    pruned, cli, tmp_path, served_on_loopback, mnist
):
    magnitude, units = pruned["magnitude"][0], pruned["units"][0]
    evaluated = cli("evaluate", units)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (units / runs.EVALUATION).is_file()
    both = cli("ensemble", magnitude, units, "--out", tmp_path / "ens")
    assert both.returncode == 0, both.stderr
    expected = Predictor.from_run(magnitude).predict_proba(mnist.x_test[:3])
    with served_on_loopback(magnitude) as url:
        for image, want in zip(mnist.x_test[:3], expected, strict=True):
            body = json.dumps({"pixels": (image / 255).tolist()}).encode()
            request = urllib.request.Request(
                f"{url}/predict", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.load(response)
            np.testing.assert_allclose(answer["probabilities"], want, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "lottery"], "argument --method: invalid choice: 'lottery'"),
        (["--sparsity", "1.5"], "mnistlab: error: --sparsity must be between 0 and 1"),
        (["--sparsity", "0"], "mnistlab: error: --sparsity must be between 0 and 1"),
        (["--epochs", "0"], "mnistlab: error: --epochs must be >= 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(cli, tiny_runs, tmp_path, args, message):
    result = cli("prune", tiny_runs[0], *args, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_unfinished_run_or_an_ensemble_is_refused(cli, tiny_runs, conv_runs, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(tiny_runs[0] / runs.CONFIG, unfinished / runs.CONFIG)
    for parent, message in (
        (unfinished, "unfinished run"),
        (conv_runs["ensemble"], "is an ensemble; prune its members"),
    ):
        result = cli("prune", parent, "--out", tmp_path / "out")
        assert result.returncode == 2
        assert message in result.stderr and len(result.stderr.splitlines()) == 1
        assert not (tmp_path / "out").exists()


def test_a_prune_killed_midway_is_redone_by_the_same_command(tiny_runs, tmp_path):
    out = tmp_path / "pruned"
    command = [sys.executable, "-m", "mnistlab", "prune", tiny_runs[0], "--epochs", "2",
               "--quiet", "--out", out]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / runs.CONFIG).is_file():  # fine-tuning has begun
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not runs.is_finished(out)
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert runs.open_run(out).metrics["sparsity"] == pytest.approx(0.9, abs=0.001)
    # And a finished one is never overwritten.
    third = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert third.returncode == 2
    assert "is a finished run; choose another run folder" in third.stderr

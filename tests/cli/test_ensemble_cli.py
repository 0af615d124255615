"""An ensemble run from the command line, and every command treating it like a run."""

import io
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab import runs
from mnistlab.config import ServeConfig
from mnistlab.predictor import Predictor
from mnistlab.serve import create_app


@pytest.fixture(scope="module")
def ensemble_run(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble") / "ens"
    result = subprocess.run(
        [sys.executable, "-m", "mnistlab", "ensemble", *map(str, tiny_runs), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_ensemble_averages_its_members_probabilities(ensemble_run, tiny_runs, mnist):
    out, stdout = ensemble_run
    x = mnist.x_test[:1000]
    members = [Predictor.from_run(run).predict_proba(x) for run in tiny_runs]
    ours = Predictor.from_run(out).predict_proba(x)
    np.testing.assert_allclose(ours, np.mean(members, axis=0), atol=1e-6)
    metrics = runs.read_json(out / runs.METRICS)
    member_metrics = [runs.read_json(run / runs.METRICS) for run in tiny_runs]
    assert metrics["member_test_accuracy"] == pytest.approx(
        [m["test_accuracy"] for m in member_metrics], abs=1e-4
    )
    assert metrics["epochs_run"] == sum(m["epochs_run"] for m in member_metrics)
    assert f"test_accuracy={metrics['test_accuracy']:.4f}" in stdout
    assert runs.read_json(out / runs.CONFIG)["config"]["members"] == list(map(str, tiny_runs))


def test_evaluate_compare_and_predict_take_an_ensemble(cli, ensemble_run, tiny_runs, tmp_path):
    out, _ = ensemble_run
    result = cli("evaluate", out)
    assert result.returncode == 0, result.stderr
    evaluation = runs.read_json(out / runs.EVALUATION)
    assert evaluation["metrics"]["accuracy"] == pytest.approx(
        runs.read_json(out / runs.METRICS)["test_accuracy"], abs=1e-6
    )
    assert len(list((out / runs.FIGURES).glob("*.png"))) == 5
    card = (out / runs.MODEL_CARD).read_text()
    members = " ".join(map(str, tiny_runs))
    assert f"mnistlab ensemble {members} --model final --out {out.name}" in card
    assert "best_model.keras" not in card  # an ensemble has none

    result = cli("compare", tiny_runs[0], out, "--out", tmp_path / "cmp.html")
    assert result.returncode == 0, result.stderr
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("ens "))
    assert row[1:4] == ["ensemble", str(567434 + 101770), "4"]

    from mnistlab.data import load_mnist

    mnist = load_mnist()
    image = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.x_test[0]).save(image)  # dark ink on white, like paper
    result = cli("predict", out, image, "--json")
    assert result.returncode == 0, result.stderr
    assert '"digit": 7' in result.stdout


def test_the_server_serves_an_ensemble(ensemble_run, mnist):
    out, _ = ensemble_run
    with TestClient(create_app(ServeConfig(run=str(out)))) as client:
        assert client.get("/metadata").json()["preset"] == "ensemble"
        buffer = io.BytesIO()
        Image.fromarray(mnist.x_test[0]).save(buffer, format="PNG")
        answer = client.post("/predict", files={"file": ("d.png", buffer.getvalue())})
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ONE"], "an ensemble needs at least two runs"),
        (["ONE", "MISSING"], "not a mnistlab run"),
        (["ONE", "TWO", "--model", "best"], None),
    ],
)
def test_bad_ensembles_exit_2_with_one_line_and_write_nothing(
    cli, tiny_runs, tmp_path, args, message
):
    names = {"ONE": tiny_runs[0], "TWO": tiny_runs[1], "MISSING": tmp_path / "missing"}
    result = cli("ensemble", *[names.get(a, a) for a in args], "--out", tmp_path / "ens")
    if message is None:  # members' best checkpoints are a valid choice
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "ens").exists()

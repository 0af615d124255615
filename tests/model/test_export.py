"""Export a real trained run, check the exports against Keras, and predict and serve them."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnistlab import runs
from mnistlab.config import ExportConfig
from mnistlab.data import load_mnist
from mnistlab.export import ExportError, export_run
from mnistlab.predictor import Predictor

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def onnx_export(default_run):
    """The default run's ONNX export and its int8 version, made by the CLI."""
    run_dir, _ = default_run
    result = subprocess.run(
        [sys.executable, "-m", "mnistlab", "export", str(run_dir), "--quantize", "int8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    path = run_dir / runs.EXPORTS / "final.onnx"
    return path, runs.read_json(path.with_name("final.onnx.json")), result.stdout


@pytest.mark.parametrize(
    "fmt",
    [
        "keras",
        "h5",
        pytest.param("savedmodel", marks=pytest.mark.skipif(not HAS_TENSORFLOW, reason="no TF")),
    ],
)
def test_float_exports_round_trip(cli, default_run, mnist, fmt, tmp_path):
    run_dir, _ = default_run
    out = tmp_path / f"model.{fmt}"
    result = cli("export", run_dir, "--format", fmt, "--out", out)
    assert result.returncode == 0, result.stderr
    record = runs.read_json(tmp_path / f"model.{fmt}.json")
    assert record["max_abs_difference"] <= 1e-4
    if fmt != "savedmodel":
        ours = Predictor.from_keras_file(out).predict_proba(mnist.x_test)
        keras_ = Predictor.from_run(run_dir).predict_proba(mnist.x_test)
        np.testing.assert_allclose(ours, keras_, atol=1e-4)


def test_onnx_export_matches_keras_on_every_test_image(onnx_export, default_run, mnist):
    path, record, stdout = onnx_export
    keras_ = Predictor.from_run(default_run[0]).predict_proba(mnist.x_test)
    onnx_ = Predictor.from_onnx(path).predict_proba(mnist.x_test)
    assert np.abs(onnx_ - keras_).max() <= 1e-4
    assert record["max_abs_difference"] <= 1e-4
    assert record["export_accuracy"] == record["keras_accuracy"]
    assert f"max |p_export - p_keras| = {record['max_abs_difference']:.2e}" in stdout


def test_int8_is_three_times_smaller_and_loses_at_most_0_2_points(onnx_export):
    _, record, stdout = onnx_export
    int8 = record["int8"]
    assert int8["size_ratio"] >= 3.0
    assert int8["accuracy"] >= record["keras_accuracy"] - 0.002
    assert f"{int8['size_ratio']:.2f}x smaller" in stdout


def test_predict_with_onnx_agrees_with_keras(cli, onnx_export, default_run, mnist, tmp_path):
    run_dir, _ = default_run
    for i in range(20):
        Image.fromarray(mnist.x_test[i]).save(tmp_path / f"{i:02d}.png")
    answers = {}
    for engine in ("keras", "onnx"):
        result = cli("predict", run_dir, tmp_path, "--json", "--engine", engine)
        assert result.returncode == 0, result.stderr
        answers[engine] = [json.loads(line) for line in result.stdout.splitlines()]
    result = cli("predict", onnx_export[0], tmp_path, "--json")  # the file itself
    assert result.returncode == 0, result.stderr
    answers["file"] = [json.loads(line) for line in result.stdout.splitlines()]
    digits = {k: [a["digit"] for a in v] for k, v in answers.items()}
    assert digits["keras"] == digits["onnx"] == digits["file"]
    for keras_, onnx_ in zip(answers["keras"], answers["onnx"], strict=True):
        assert keras_["probability"] == pytest.approx(onnx_["probability"], abs=1e-4)


@pytest.mark.parametrize("int8", [False, True])
def test_serving_an_onnx_file_never_imports_keras_or_jax(onnx_export, int8):
    path, record, _ = onnx_export
    path = runs.int8_path(path) if int8 else path
    accuracy = record["int8"]["accuracy"] if int8 else record["export_accuracy"]
    script = f"""
import sys
from fastapi.testclient import TestClient
from mnistlab.config import ServeConfig
from mnistlab.serve import create_app
with TestClient(create_app(ServeConfig(run={str(path)!r}))) as client:
    one = [[0.0] * 28] * 10 + [[0.0] * 12 + [1.0] * 4 + [0.0] * 12] * 8 + [[0.0] * 28] * 10
    answer = client.post("/predict", json={{"pixels": one}})
    assert answer.status_code == 200, answer.text
    meta = client.get("/metadata").json()
print(meta["engine"], meta["preset"], meta["test_accuracy"], "keras" in sys.modules,
      "jax" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["onnx", "deep-mlp", str(accuracy), "False", "False"]


def test_a_failed_check_writes_nothing(default_run, monkeypatch, tmp_path):
    monkeypatch.setattr("mnistlab.export.FLOAT_TOLERANCE", 0.0)  # ONNX differs by rounding
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match="differs from Keras by up to"):
        export_run(ExportConfig(run=str(default_run[0]), out=str(out)), load_mnist())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(HAS_TENSORFLOW, reason="TF installed: the SavedModel export works")
def test_a_format_without_its_package_names_it(cli, default_run, tmp_path):
    result = cli("export", default_run[0], "--format", "savedmodel", "--out", tmp_path / "m")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mnistlab: error: format savedmodel on the jax backend needs tensorflow: "
        "pip install tensorflow"
    )


def test_corrupt_or_foreign_onnx_gets_one_line(cli, tmp_path, mnist):
    import onnx
    from onnx import TensorProto, helper

    image = tmp_path / "digit.png"
    Image.fromarray(mnist.x_test[0]).save(image)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    foreign = tmp_path / "foreign.onnx"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, foreign)
    expected = {
        corrupt: "not a loadable ONNX model",
        foreign: "an ONNX model, but not an MNIST classifier",
        tmp_path / "missing.onnx": "no such file",
    }
    for path, message in expected.items():
        result = cli("predict", path, image)
        assert result.returncode == 2, result.stdout
        assert message in result.stderr and result.stderr.count("\n") == 1

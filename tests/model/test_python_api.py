"""The Python API for notebooks: the README's example as written, and what it promises."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mnistlab
from mnistlab import runs
from mnistlab.config import ConfigError
from mnistlab.data import scale
from mnistlab.images import ImageError
from mnistlab.predictor import Predictor

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("### From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_readme_example_runs_as_written_whatever_keras_json_says(tmp_path):
    # The failure this guards against: keras.json naming TensorFlow, which is not installed.
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", readme_example()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[-5:]  # after Keras' progress bars
    run_dir = tmp_path / lines[0].split()[0]
    assert float(lines[0].split()[1]) == runs.open_run(run_dir).metrics["test_accuracy"] > 0.9
    assert lines[1] == "567434"  # the reference MLP's parameters
    assert lines[2] == "True"
    assert lines[3] == "[7, 2, 1]"  # the first three test digits
    assert lines[4] == "(512, 256, 128) train"
    assert runs.open_run(run_dir).provenance["backend"] == "jax"


def test_importing_mnistlab_loads_nothing_heavy_and_train_is_a_function():
    script = "import sys, mnistlab; print(sorted(m for m in ('keras', 'jax', 'sklearn', "
    script += "'matplotlib') if m in sys.modules)); print(callable(mnistlab.train))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.split("\n")[:2] == ["[]", "True"], result.stderr


@pytest.fixture(scope="module")
def api_run(tmp_path_factory, mnist):
    return mnistlab.train(
        "mlp-128", data=mnist, run_dir=tmp_path_factory.mktemp("api") / "run",
        verbose=0, epochs=3, limit=10000,
    )  # fmt: skip


def test_train_returns_the_run_with_its_model_history_and_metrics(api_run, mnist):
    assert api_run == runs.open_run(api_run.path)  # what is on disk, read back
    assert api_run.config.hidden_units == (128,) and api_run.config.limit == 10000
    assert len(api_run.history) == api_run.metrics["epochs_run"] == 3
    # The model in memory is the model saved: the same probabilities.
    x = scale(mnist.x_test[:100])
    saved = Predictor.from_run(api_run.path).predict_proba(x)
    np.testing.assert_allclose(api_run.model.predict(x, verbose=0), saved, atol=1e-6)


def test_evaluate_takes_a_run_or_a_path_and_agrees_with_training(api_run):
    by_run, by_path = mnistlab.evaluate(api_run), mnistlab.evaluate(str(api_run.path))
    assert by_run.metrics == by_path.metrics
    assert by_run.metrics["accuracy"] == api_run.metrics["test_accuracy"]
    assert by_run.metrics["loss"] == api_run.metrics["test_loss"]
    html = by_run._repr_html_()  # how Jupyter shows it
    assert html.count("<img") == len(by_run.figures) == 5
    assert f"{api_run.metrics['test_accuracy']:.4f}" in html
    assert type(by_run.figures["confusion_matrix"]).__name__ == "Figure"


def test_predict_takes_arrays_and_image_files(api_run, mnist, tmp_path):
    from PIL import Image

    answers = mnistlab.predict(api_run, mnist.x_test[:20])
    expected = Predictor.from_run(api_run).predict_proba(mnist.x_test[:20]).argmax(1)
    assert [a.digit for a in answers] == expected.tolist()
    assert np.mean(expected == mnist.y_test[:20]) >= 0.8  # 3 epochs on 10,000 images
    Image.fromarray(255 - mnist.x_test[0]).save(tmp_path / "seven.png")  # ink on paper
    (from_file,) = mnistlab.predict(api_run.path, tmp_path / "seven.png")
    assert from_file.digit == 7
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match=r"broken\.png: "):
        mnistlab.predict(api_run, [tmp_path / "seven.png", tmp_path / "broken.png"])


def test_library_errors_name_arguments_not_flags(tmp_path, mnist):
    with pytest.raises(ConfigError, match="unknown TrainConfig fields: epochz; the fields") as e:
        mnistlab.train(epochz=3, data=mnist)
    assert "--" not in str(e.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(runs.RunError) as e:
        mnistlab.train(data=mnist, run_dir=tmp_path / "file", epochs=1, limit=100)
    assert "--" not in str(e.value)

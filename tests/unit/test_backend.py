"""The Keras backend: JAX unless the user chose another that is installed."""

import json
import subprocess
import sys

import pytest

from mnistlab import backend


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A Keras home of its own, no $KERAS_BACKEND, and Keras not yet imported."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delitem(sys.modules, "keras", raising=False)

    def write(name):
        (tmp_path / "keras.json").write_text(json.dumps({"backend": name}))
        return tmp_path / "keras.json"

    return write


def test_no_choice_means_jax(keras_home):
    assert backend.choose() is None
    assert backend.os.environ["KERAS_BACKEND"] == "jax"


def test_the_tensorflow_that_keras_writes_itself_is_no_choice(keras_home):
    keras_home("tensorflow")  # what Keras writes into a missing keras.json
    assert backend.choose() is None
    assert backend.os.environ["KERAS_BACKEND"] == "jax"


def test_a_chosen_backend_that_is_installed_is_kept(keras_home):
    keras_home("numpy")
    assert backend.choose() is None
    assert backend.os.environ["KERAS_BACKEND"] == "numpy"


def test_a_chosen_backend_that_is_missing_gives_jax_and_names_the_file(keras_home):
    path = keras_home("mxnet")
    notice = backend.choose()
    assert backend.os.environ["KERAS_BACKEND"] == "jax"
    assert f"{path} names the Keras backend 'mxnet'" in notice
    assert f"change {path}" in notice


def test_the_environment_variable_wins_and_is_named(keras_home, monkeypatch):
    keras_home("numpy")
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    assert "environment variable KERAS_BACKEND" in backend.choose()
    assert backend.os.environ["KERAS_BACKEND"] == "jax"


def _in_a_fresh_process(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_lean_keras_leaves_out_its_extras_and_they_still_import_after():
    script = """
import sys
from mnistlab import backend
backend.choose()
backend.import_keras_lean()
before = [name in sys.modules for name in ("keras", "sklearn", "matplotlib.pyplot")]
import matplotlib.pyplot, sklearn.metrics
figure = matplotlib.pyplot.figure()
print(before, sklearn.metrics.accuracy_score([1, 2], [1, 3]), figure is not None)
"""
    assert _in_a_fresh_process(script) == "[True, False, False] 0.5 True"


def test_lean_keras_leaves_an_extra_already_imported_to_keras():
    script = """
import sklearn
from mnistlab import backend
backend.choose()
backend.import_keras_lean()
from keras.src.wrappers import fixes
print(fixes.sklearn is sklearn)
"""
    assert _in_a_fresh_process(script) == "True"


def test_lean_keras_imports_keras_whole_when_it_needs_what_was_hidden():
    # rich (which Keras needs to import) stands for an extra a future Keras needs.
    script = """
from mnistlab import backend
backend.choose()
backend.KERAS_EXTRAS = ("rich",)
backend.import_keras_lean()
import keras, rich.console
print(keras.layers.Dense(2).units, rich.console.Console is not None)
"""
    assert _in_a_fresh_process(script) == "2 True"

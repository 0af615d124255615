"""The Keras backend: JAX unless the user chose another that is installed."""

import json
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

"""Each preset builds the network it names: a table of hand-counted parameters."""

import keras
import numpy as np
import pytest

from mnistlab.config import PRESETS
from mnistlab.models import MaxPool2x2, build_model, layer_table

# Dense: inputs * units + units. Conv2D 3x3 on 1 channel: 9 * filters + filters.
PARAMETERS = {
    "deep-mlp": 784 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,
    "deep-mlp-aug": 784 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,
    "mlp-128": 784 * 128 + 128 + 128 * 10 + 10,
    "mlp-l2": 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10,
    "mlp-512x2": 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10,
    # 28x28 -> conv 26x26x32 -> pool 13x13x32 = 5,408 features
    "cnn-basic": 9 * 32 + 32 + 13 * 13 * 32 * 128 + 128 + 128 * 10 + 10,
    # Same padding, 28 -> 14 -> 7 -> 3; no biases before BN (4 numbers per channel).
    "cnn": (9 * 16 + 4 * 16)
    + (9 * 16 * 32 + 4 * 32)
    + (9 * 32 * 64 + 4 * 64)
    + (3 * 3 * 64 * 128 + 4 * 128)
    + (128 * 10 + 10),
}


@pytest.mark.parametrize(("preset", "parameters"), PARAMETERS.items())
def test_preset_parameter_counts(preset, parameters):
    model = build_model(PRESETS[preset])
    assert model.count_params() == parameters
    assert sum(row[3] for row in layer_table(model)) == parameters


def test_every_preset_is_counted_here():
    assert set(PARAMETERS) == set(PRESETS)


def test_cnn_basic_layers_and_output():
    model = build_model(PRESETS["cnn-basic"])
    kinds = [kind for _, kind, _, _ in layer_table(model)]
    assert kinds == ["InputLayer", "Reshape", "Conv2D", "MaxPool2x2", "Flatten", "Dense", "Dense"]
    probabilities = model.predict(np.zeros((2, 28, 28), np.float32), verbose=0)
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_puts_batch_norm_between_each_layer_and_its_relu():
    kinds = [kind for _, kind, _, _ in layer_table(build_model(PRESETS["cnn"]))]
    assert kinds[2:6] == ["Conv2D", "BatchNormalization", "Activation", "MaxPool2x2"]
    assert kinds[-5:] == ["Dense", "BatchNormalization", "Activation", "Dropout", "Dense"]


@pytest.mark.parametrize("side", [28, 13, 7, 5])
def test_maxpool2x2_equals_keras_maxpooling2d(side):
    x = np.random.default_rng(side).normal(size=(3, side, side, 4)).astype("float32")
    ours = np.asarray(MaxPool2x2()(x))
    theirs = np.asarray(keras.layers.MaxPooling2D(2)(x))
    assert ours.shape == theirs.shape == (3, side // 2, side // 2, 4)
    np.testing.assert_array_equal(ours, theirs)

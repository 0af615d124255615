"""build_model(config) -> an uncompiled keras.Model; backend-agnostic (layers and keras.ops)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
from keras import layers, ops

from mnistlab.config import IMAGE_SHAPE, NUM_CLASSES, TrainConfig
from mnistlab.errors import ModelFileError, first_line


@keras.saving.register_keras_serializable(package="mnistlab")
class MaxPool2x2(layers.Layer):
    """2x2 max pooling (stride 2, odd edges dropped, as MaxPooling2D) by reshape and max.

    Same outputs as MaxPooling2D; its gradient is a plain reduction where XLA's CPU
    select-and-scatter is slow: a 3-conv CNN epoch takes 16 s instead of 27 s on JAX
    (benchmarks/cnn_speed.py).
    """

    def call(self, x):
        _, height, width, channels = x.shape
        x = x[:, : height // 2 * 2, : width // 2 * 2, :]
        x = ops.reshape(x, (-1, height // 2, 2, width // 2, 2, channels))
        return ops.max(x, axis=(2, 4))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height // 2, width // 2, channels)


def build_model(config: TrainConfig) -> keras.Model:
    """The network the config describes: conv blocks (if any), Flatten, then Dense ReLU
    (+ Dropout) per hidden layer, then softmax. With batch_norm, a BatchNormalization sits
    between each conv or hidden Dense and its ReLU (which then needs no bias).

    Inputs are (batch, 28, 28) floats in [0, 1]; outputs (batch, 10) class probabilities.
    """
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = inputs
    if config.conv_filters:
        x = layers.Reshape((*IMAGE_SHAPE, 1), name="channels")(x)  # (batch, 28, 28, 1)
    for i, filters in enumerate(config.conv_filters, start=1):
        x = _with_relu(
            x, layers.Conv2D, config.batch_norm, f"conv_{i}",
            filters=filters, kernel_size=3, padding=config.conv_padding,
        )  # fmt: skip
        x = MaxPool2x2(name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)  # (batch, features)
    hidden = zip(config.hidden_units, config.layer_dropout, config.layer_l2, strict=True)
    for i, (units, dropout, l2) in enumerate(hidden, start=1):
        regularizer = keras.regularizers.L2(l2) if l2 else None
        x = _with_relu(
            x, layers.Dense, config.batch_norm, f"hidden_{i}",
            units=units, kernel_regularizer=regularizer,
        )  # fmt: skip
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=config.preset)


def _with_relu(x, layer_type, batch_norm: bool, name: str, **kwargs):
    """layer_type(**kwargs) then ReLU: fused, as the published presets have it, or with
    batch_norm as layer (no bias) -> BatchNormalization -> ReLU."""
    if not batch_norm:
        return layer_type(activation="relu", name=name, **kwargs)(x)
    x = layer_type(use_bias=False, name=name, **kwargs)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def load_model(path: Path) -> keras.Model:
    """A .keras (or legacy .h5) file holding an MNIST classifier: (N, 28, 28) in, (N, 10)
    out; a ModelFileError for anything else."""
    # Keras answers "File not found" for an empty or truncated .keras file (a zip).
    if Path(path).suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras model (empty, truncated or not a zip)")
    try:
        model = keras.saving.load_model(path)  # MaxPool2x2 is registered above
    except Exception as e:  # Keras raises many types for a bad or unsafe file
        raise ModelFileError(f"{path}: not a loadable Keras model ({first_line(e)})") from None
    given = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    gives = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if given != IMAGE_SHAPE or gives != (NUM_CLASSES,):
        raise ModelFileError(
            f"{path}: a Keras model, but not an MNIST classifier: it takes "
            f"{model.input_shape} and gives {model.output_shape}; expected "
            f"{(None, *IMAGE_SHAPE)} and {(None, NUM_CLASSES)}"
        )
    return model


def layer_table(model: keras.Model) -> list[tuple[str, str, str, int]]:
    """(name, layer type, output shape, parameters) for each layer, input first."""
    return [
        (layer.name, type(layer).__name__, str(tuple(layer.output.shape)), layer.count_params())
        for layer in model.layers
    ]

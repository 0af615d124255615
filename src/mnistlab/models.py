"""build_model(config) -> an uncompiled keras.Model; backend-agnostic (layers only)."""

from __future__ import annotations

import keras
from keras import layers

from mnistlab.config import TrainConfig
from mnistlab.data import IMAGE_SHAPE, NUM_CLASSES


def build_model(config: TrainConfig) -> keras.Model:
    """The MLP the config describes: Flatten, then Dense ReLU (+ Dropout) per hidden layer.

    Inputs are (batch, 28, 28) floats in [0, 1]; outputs (batch, 10) class probabilities.
    """
    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Flatten(name="flatten")(inputs)  # (batch, 784)
    for i, units in enumerate(config.hidden_units, start=1):
        x = layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, name=f"hidden_{i}"
        )(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=config.preset)


def layer_table(model: keras.Model) -> list[tuple[str, str, str, int]]:
    """(name, layer type, output shape, parameters) for each layer, input first."""
    return [
        (layer.name, type(layer).__name__, str(tuple(layer.output.shape)), layer.count_params())
        for layer in model.layers
    ]

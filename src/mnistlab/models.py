"""build_model(config) -> an uncompiled keras.Model; backend-agnostic (layers only)."""

from __future__ import annotations

import keras
from keras import layers

from mnistlab.config import TrainConfig
from mnistlab.data import IMAGE_SHAPE, NUM_CLASSES


def build_model(config: TrainConfig) -> keras.Model:
    """The network the config describes: conv blocks (if any), Flatten, then Dense ReLU
    (+ Dropout) per hidden layer, then softmax.

    Inputs are (batch, 28, 28) floats in [0, 1]; outputs (batch, 10) class probabilities.
    """
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = inputs
    if config.conv_filters:
        x = layers.Reshape((*IMAGE_SHAPE, 1), name="channels")(x)  # (batch, 28, 28, 1)
    for i, filters in enumerate(config.conv_filters, start=1):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"conv_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)  # (batch, features)
    hidden = zip(config.hidden_units, config.layer_dropout, config.layer_l2, strict=True)
    for i, (units, dropout, l2) in enumerate(hidden, start=1):
        regularizer = keras.regularizers.L2(l2) if l2 else None
        x = layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, name=f"hidden_{i}"
        )(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=config.preset)


def layer_table(model: keras.Model) -> list[tuple[str, str, str, int]]:
    """(name, layer type, output shape, parameters) for each layer, input first."""
    return [
        (layer.name, type(layer).__name__, str(tuple(layer.output.shape)), layer.count_params())
        for layer in model.layers
    ]

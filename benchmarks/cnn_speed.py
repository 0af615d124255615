"""Seconds per training epoch of the conv presets: MaxPool2x2 against Keras' MaxPooling2D.

XLA's CPU gradient of MaxPooling2D (select-and-scatter) dominated a small CNN's step;
mnistlab pools by reshape and max instead (same outputs, tested). Prints, from one run:
the seconds per epoch of each conv preset's network, without augmentation, with either
pooling layer, on the real training images, and the ratio. Timed: --steps training steps
after one compiled warm-up call, scaled to one epoch. Then the seconds augmentation adds
to an epoch of the `cnn` preset (augment_batch over its training images, on the host).

Usage: python benchmarks/cnn_speed.py [--data PATH] [--steps 150]
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

from mnistlab import models
from mnistlab.augment import augment_batch
from mnistlab.config import PRESETS
from mnistlab.data import load_mnist, scale, split_validation
from mnistlab.training import OPTIMIZERS


def seconds_per_epoch(config, x, y, steps: int) -> float:
    keras.utils.set_random_seed(0)
    model = models.build_model(config)
    spe = 50
    model.compile(OPTIMIZERS[config.optimizer](config.learning_rate),
                  "sparse_categorical_crossentropy", steps_per_execution=spe)  # fmt: skip
    batch = config.batch_size
    model.fit(x[: batch * spe], y[: batch * spe], batch_size=batch, verbose=0)  # compile
    n = batch * steps
    start = time.perf_counter()
    model.fit(x[:n], y[:n], batch_size=batch, verbose=0)
    return (time.perf_counter() - start) / steps * -(-len(x) // batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    data = load_mnist(args.data)
    ours = models.MaxPool2x2
    print(f"{'preset':<10} {'MaxPool2x2 s':>13} {'MaxPooling2D s':>15} {'ratio':>6}")
    for name in ("cnn-basic", "cnn"):
        config = PRESETS[name]
        (x, y), _ = split_validation(scale(data.x_train), data.y_train, config.validation_split)
        models.MaxPool2x2 = ours
        fast = seconds_per_epoch(config, x, y, args.steps)
        models.MaxPool2x2 = lambda name: keras.layers.MaxPooling2D(2, name=name)
        slow = seconds_per_epoch(config, x, y, args.steps)
        print(f"{name:<10} {fast:>13.1f} {slow:>15.1f} {slow / fast:>6.2f}", flush=True)
    batch = PRESETS["cnn"].batch_size
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        augment_batch(x[i : i + batch], rng)
    print(f"augmentation: {time.perf_counter() - start:.1f} s per epoch of {len(x)} images")


if __name__ == "__main__":
    main()

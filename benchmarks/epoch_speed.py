"""Seconds per epoch of the default preset against the NumPy floor, and peak memory.

Prints, from one run on this machine:
  - the floor: one epoch's forward and backward matrix products (48,000 images in batches
    of 128) done directly with NumPy, nothing else; median of --repeats;
  - mnistlab's epoch through the real training path (fit, validation, every callback:
    checkpoint, backup, TensorBoard histograms) for steps_per_execution 1 and the
    default, median over the epochs after the first (the first compiles);
  - the ratios to the floor (target: <= 1.5 for the default);
  - peak RSS and test accuracy of one full default training (`mnistlab train`, target
    RSS < 2 GiB), run as its own process.

Usage: python benchmarks/epoch_speed.py [--data PATH] [--epochs 5] [--repeats 5]
"""

import argparse
import dataclasses
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mnistlab import runs
from mnistlab.config import PRESETS
from mnistlab.data import load_mnist


def numpy_floor(config, n_images: int, repeats: int) -> float:
    """Median seconds for one epoch's matrix products of the MLP in `config`."""
    rng = np.random.default_rng(0)
    dims = [28 * 28, *config.hidden_units, 10]
    weights = [rng.standard_normal((a, b), dtype=np.float32) for a, b in itertools.pairwise(dims)]
    x = rng.standard_normal((config.batch_size, dims[0]), dtype=np.float32)
    steps = -(-n_images // config.batch_size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            activations = [x]
            for w in weights:  # forward: (batch, in) @ (in, out)
                activations.append(activations[-1] @ w)
            grad = np.ones((config.batch_size, dims[-1]), np.float32)
            for i in reversed(range(len(weights))):
                _ = activations[i].T @ grad  # weight gradient
                if i:
                    grad = grad @ weights[i].T  # gradient to the layer below
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_epoch(config, data, epochs: int) -> float:
    from mnistlab.training import train

    with tempfile.TemporaryDirectory() as tmp:
        train(config, data, Path(tmp) / "run", verbose=0)
        seconds = [row["seconds"] for row in runs.read_json(Path(tmp) / "run" / runs.HISTORY)]
    return statistics.median(seconds[1:])


def full_training(data_path: str) -> tuple[float, float, float]:
    """Peak RSS (GiB), test accuracy and wall seconds of `mnistlab train` with defaults."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mnistlab", "train", "--quiet", "--data", data_path,
             "--run-dir", f"{tmp}/run"],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - start
        accuracy = runs.read_json(Path(tmp) / "run" / runs.METRICS)["test_accuracy"]
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
    return peak_kib / 2**20, accuracy, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-full", action="store_true", help="skip the full training")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")

    data = load_mnist(args.data)
    config = dataclasses.replace(PRESETS["deep-mlp"], epochs=args.epochs)
    n_train = int(len(data.x_train) * (1 - config.validation_split))
    floor = numpy_floor(config, n_train, args.repeats)
    print(f"numpy floor, {n_train} images: {floor:.3f} s/epoch")
    for spe in sorted({1, config.steps_per_execution}):
        seconds = keras_epoch(
            dataclasses.replace(config, steps_per_execution=spe), data, args.epochs
        )
        print(f"mnistlab epoch, steps_per_execution={spe}: {seconds:.3f} s/epoch "
              f"ratio {seconds / floor:.2f}x")  # fmt: skip
    if not args.skip_full:
        peak, accuracy, wall = full_training(data.source)
        print(f"full default training: peak RSS {peak:.2f} GiB, test_accuracy {accuracy:.4f}, "
              f"{wall:.0f} s wall")  # fmt: skip


if __name__ == "__main__":
    main()

"""How much accuracy a run loses on simulated low-resolution scans of the test digits.

Each of the first N MNIST test digits is scanned as documents.low_resolution_scan makes
it (16x16, binarised with a thinner or thicker stroke, upscaled 3x to 6x onto unevenly
lit paper), read back through images.to_mnist, and classified. Prints the accuracy on
the originals, on the scans, and the drop in points (targets: cnn within 1.5, deep-mlp
within 3).
Usage: python benchmarks/scans.py RUN... [--n 3000] [--data PATH]
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

from mnistlab import images
from mnistlab.data import load_mnist
from mnistlab.predictor import Predictor
from mnistlab.read import documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    mnist = load_mnist(args.data)
    x, y = mnist.x_test[: args.n], mnist.y_test[: args.n]
    rng = np.random.default_rng(0)
    scans = np.stack(
        [images.to_mnist(documents.low_resolution_scan(d, rng).astype(float)) for d in x]
    )
    print(f"{'run':<30} {'originals':>10} {'scans':>8} {'drop (points)':>14}")
    for run in args.runs:
        predictor = Predictor.from_run(run)
        original = (predictor.predict_proba(x).argmax(1) == y).mean()
        scanned = (predictor.predict_proba(scans).argmax(1) == y).mean()
        print(
            f"{run.name:<30} {original:>10.2%} {scanned:>8.2%} {100 * (original - scanned):>14.2f}"
        )


if __name__ == "__main__":
    main()

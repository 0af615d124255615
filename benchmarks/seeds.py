"""Each preset over several seeds: test accuracy (each seed, mean and spread), parameters,
epochs, training time, and accuracy on digits from another source.

Each seed is a full `mnistlab train` in its own process, exactly as a user runs it; its
wall time includes start-up, compilation and the test evaluation. The other source is
scikit-learn's 8x8 digits made MNIST-style (`evaluate --data sklearn-digits`).
Usage: python benchmarks/seeds.py [--presets deep-mlp cnn] [--seeds 0 1 2] [--keep DIR]
Prints one line per training, then a Markdown table row per preset.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

from mnistlab import runs
from mnistlab.config import PRESETS
from mnistlab.data import SKLEARN_DIGITS, load_digits_set
from mnistlab.metrics import measure
from mnistlab.models import build_model
from mnistlab.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["deep-mlp"], choices=list(PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default=None, help="mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--keep", type=Path, help="keep the runs here as PRESET-sSEED")
    args = parser.parse_args()
    other = load_digits_set(SKLEARN_DIGITS)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for preset in args.presets:
            results = []
            for seed in args.seeds:
                run_dir = root / f"{preset}-s{seed}"
                if not runs.is_finished(run_dir):
                    command = [sys.executable, "-m", "mnistlab", "train", "--quiet", "--preset",
                               preset, "--seed", str(seed), "--run-dir", str(run_dir)]  # fmt: skip
                    if args.data:
                        command += ["--data", args.data]
                    start = time.perf_counter()
                    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                    runs.write_json(run_dir / "wall_seconds.json", time.perf_counter() - start)
                metrics = runs.read_json(run_dir / runs.METRICS)
                wall = runs.read_json(run_dir / "wall_seconds.json")
                other_metrics, _ = measure(Predictor.from_run(run_dir), other.x, other.y)
                other_accuracy = other_metrics["accuracy"]
                results.append((metrics, wall, other_accuracy))
                print(f"{preset} seed {seed}: test_accuracy {metrics['test_accuracy']:.4f} "
                      f"test_loss {metrics['test_loss']:.4f} epochs {metrics['epochs_run']} "
                      f"wall {wall:.0f} s {SKLEARN_DIGITS} {other_accuracy:.4f}",
                      flush=True)  # fmt: skip
            rows.append(row(preset, args.seeds, results))
    print("| preset | test accuracy, mean (min-max) | std | parameters | epochs | "
          f"minutes per training | {SKLEARN_DIGITS} | command |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for line in rows:
        print(line)


def row(preset: str, seeds: list[int], results: list) -> str:
    accuracy = [m["test_accuracy"] * 100 for m, _, _ in results]
    spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
    epochs = [m["epochs_run"] for m, _, _ in results]
    minutes = statistics.mean(w for _, w, _ in results) / 60
    other = statistics.mean(o for _, _, o in results) * 100
    return (
        f"| {preset} | {statistics.mean(accuracy):.2f}% ({min(accuracy):.2f}-{max(accuracy):.2f})"
        f" | {spread:.2f} | {build_model(PRESETS[preset]).count_params():,} "
        f"| {min(epochs)}-{max(epochs)} | {minutes:.1f} | {other:.1f}% "
        f"| `mnistlab train --preset {preset} --seed N` |"
        if len(seeds) > 1 else
        f"| {preset} | {accuracy[0]:.2f}% (seed {seeds[0]}) | - "
        f"| {build_model(PRESETS[preset]).count_params():,} | {epochs[0]} | {minutes:.1f} "
        f"| {other:.1f}% | `mnistlab train --preset {preset}` |"
    )  # fmt: skip


if __name__ == "__main__":
    main()

"""Test accuracy of a preset over several seeds: each seed, then mean and spread.

Each seed is a full `mnistlab train` in its own process, exactly as a user runs it.
Usage: python benchmarks/seeds.py [--preset deep-mlp] [--seeds 0 1 2] [--data PATH]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mnistlab import runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="deep-mlp")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default=None, help="mnist.npz (default: $MNISTLAB_DATA)")
    args = parser.parse_args()

    accuracies = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            run_dir = Path(tmp) / f"seed-{seed}"
            command = [sys.executable, "-m", "mnistlab", "train", "--quiet", "--preset",
                       args.preset, "--seed", str(seed), "--run-dir", str(run_dir)]  # fmt: skip
            if args.data:
                command += ["--data", args.data]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            metrics = runs.read_json(run_dir / runs.METRICS)
            accuracies.append(metrics["test_accuracy"])
            print(f"{args.preset} seed {seed}: test_accuracy {metrics['test_accuracy']:.4f} "
                  f"test_loss {metrics['test_loss']:.4f} epochs {metrics['epochs_run']} "
                  f"training {metrics['training_seconds']:.0f} s", flush=True)  # fmt: skip
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"{args.preset} mean test_accuracy {statistics.mean(accuracies):.4f} "
          f"(std {spread:.4f}, min {min(accuracies):.4f}, max {max(accuracies):.4f}) "
          f"over seeds {' '.join(map(str, args.seeds))}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Trials per 10 minutes and best validation accuracy: median pruner against no pruner.

Both searches get the same seed, data, epochs and wall-clock budget; each is a real
`mnistlab tune --no-retrain --timeout BUDGET` in its own process. Trials finished per
10 minutes = finished (complete + pruned) trials * 600 / budget.

Usage: python benchmarks/tune_speed.py [--budget 600] [--limit N] [--epochs 20] [--data PATH]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

TEN_MINUTES = 600


def search(pruner: str, args: argparse.Namespace, folder: str) -> tuple[int, int, float]:
    """(finished trials, pruned trials, best value) of one budgeted search."""
    from mnistlab import tune  # imports Keras: after the backend is chosen

    command = [sys.executable, "-m", "mnistlab", "tune", "--no-retrain", "--quiet",
               "--pruner", pruner, "--study", pruner, "--seed", str(args.seed),
               "--trials", "100000", "--timeout", str(args.budget),
               "--epochs", str(args.epochs)]  # fmt: skip
    if args.limit:
        command += ["--limit", str(args.limit)]
    if args.data:
        command += ["--data", args.data]
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    storage = tune.storage_url(pruner, None, Path(folder) / "runs")
    study = optuna.load_study(study_name=pruner, storage=storage)
    finished = study.get_trials(states=tune.FINISHED)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in finished)
    return len(finished), pruned, study.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=TEN_MINUTES, help="seconds per search")
    parser.add_argument("--limit", type=int, default=None, help="training images per trial")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for pruner in ("none", "median"):
            finished, pruned, best = search(pruner, args, folder)
            per_ten = finished * TEN_MINUTES / args.budget
            results[pruner] = (per_ten, best)
            print(f"pruner={pruner}: {finished} trials ({pruned} pruned) in {args.budget:.0f} s "
                  f"= {per_ten:.1f} per 10 min, best val_accuracy {best:.4f}",
                  flush=True)  # fmt: skip
    (none_rate, none_best), (median_rate, median_best) = results["none"], results["median"]
    print(f"median/none: {median_rate / none_rate:.2f}x trials, "
          f"best val_accuracy {median_best - none_best:+.4f}")  # fmt: skip


if __name__ == "__main__":
    main()

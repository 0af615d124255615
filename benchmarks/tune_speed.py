"""Trials per 10 minutes and best validation accuracy of two searches side by side:
`mnistlab tune`'s defaults (median pruner, 2 worker processes on 2 cores or more) against
no pruner in one process (--compare defaults); the median pruner against none, in one
process each (--compare pruners); 2 worker processes against 1, no pruner
(--compare workers); or the default search space against the seed's (--compare spaces,
both with the median pruner).

Both searches get the same seed, data, epochs and wall-clock budget; each is a real
`mnistlab tune --no-retrain --timeout BUDGET` in its own process, with an empty JAX
compile cache of its own (so neither finds the other's programs). Trials finished per
10 minutes = finished (complete + pruned) trials * 600 / budget. With several --seeds,
each seed runs both searches and the mean ratio is printed last.

Usage: python benchmarks/tune_speed.py [--compare defaults|pruners|workers|spaces]
       [--budget 600] [--limit N] [--epochs 20] [--seeds 0 1 2] [--data PATH]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

TEN_MINUTES = 600


# What each comparison runs: (name, the options that differ), the baseline first. The
# baseline of `defaults` is the search before pruning and local workers (the performance
# issue's); the others compare one thing, in one worker process.
ONE = ["--jobs", "1"]
COMPARISONS = {
    "defaults": [("none", ["--pruner", "none", *ONE]), ("defaults", [])],
    "pruners": [("none", ["--pruner", "none", *ONE]), ("median", ["--pruner", "median", *ONE])],
    "workers": [("one", ["--pruner", "none", *ONE]), ("two", ["--pruner", "none", "--jobs", "2"])],
    "spaces": [("seed", ["--space", "seed", *ONE]), ("default", ["--space", "default", *ONE])],
}
CHANCE = 0.1  # a val_accuracy at or below this learned nothing


def search(
    name: str, options: list[str], seed: int, args: argparse.Namespace, folder: str
) -> tuple[int, int, int, float]:
    """(finished trials, pruned trials, trials at chance or below, best value) of one
    budgeted search."""
    from mnistlab import tune  # imports Keras: after the backend is chosen

    command = [sys.executable, "-m", "mnistlab", "tune", "--no-retrain", "--quiet",
               *options, "--study", name, "--seed", str(seed),
               "--trials", "100000", "--timeout", str(args.budget),
               "--epochs", str(args.epochs)]  # fmt: skip
    if args.limit:
        command += ["--limit", str(args.limit)]
    if args.data:
        command += ["--data", args.data]
    env = {**os.environ, "XDG_CACHE_HOME": str(Path(folder, "cache", name))}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL, env=env)
    storage = tune.storage_url(name, None, Path(folder) / "runs")
    study = optuna.load_study(study_name=name, storage=storage)
    finished = study.get_trials(states=tune.FINISHED)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in finished)
    hopeless = sum(max(t.intermediate_values.values(), default=0) <= CHANCE for t in finished)
    return len(finished), pruned, hopeless, study.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", choices=COMPARISONS, default="defaults")
    parser.add_argument("--budget", type=float, default=TEN_MINUTES, help="seconds per search")
    parser.add_argument("--limit", type=int, default=None, help="training images per trial")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")

    ratios = []
    for seed in args.seeds:
        results = []
        with tempfile.TemporaryDirectory() as folder:
            for name, options in COMPARISONS[args.compare]:
                finished, pruned, hopeless, best = search(name, options, seed, args, folder)
                per_ten = finished * TEN_MINUTES / args.budget
                results.append((name, per_ten, best))
                print(f"seed {seed}, {args.compare}: {name}: {finished} trials ({pruned} "
                      f"pruned, {hopeless} at chance or below) in {args.budget:.0f} s = "
                      f"{per_ten:.1f} per 10 min, best val_accuracy {best:.4f}",
                      flush=True)  # fmt: skip
        (base, base_rate, base_best), (other, rate, best) = results
        ratios.append(rate / base_rate)
        print(f"seed {seed}, {other}/{base}: {ratios[-1]:.2f}x trials, "
              f"best val_accuracy {best - base_best:+.4f}", flush=True)  # fmt: skip
    if len(ratios) > 1:
        print(f"mean over seeds {args.seeds}: {sum(ratios) / len(ratios):.2f}x trials")


if __name__ == "__main__":
    main()

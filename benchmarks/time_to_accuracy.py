"""Seconds from the start to a test accuracy, for a preset and for an ensemble of its seeds.

For the README's GPU figures (seconds to 99.5% and 99.7%), and any machine's. Each member
is a real `mnistlab train` (TensorBoard histograms, both checkpoints, the backups), in its
own process; all start at once, so on one GPU they share it as an ensemble's training
would. A probe appended to each member's callbacks predicts the test images after every
epoch and notes the seconds since the benchmark began, less the probe's own seconds. It
never steers training: the numbers say when a model of that quality existed, as
time-to-accuracy benchmarks do, not which epoch a user would have picked. The ensemble's
accuracy after epoch e is that of its members' averaged probabilities after epoch e,
reached when the slowest member finished that epoch. For each accuracy the table gives
the seconds to the first epoch at or above it and to the epoch from which all stay there.
Then `mnistlab ensemble` assembles the members' final models, and its wall time is the
seconds to a saved ensemble.

Usage: python benchmarks/time_to_accuracy.py [--preset cnn] [--members 5] [--seed 0]
       [--data PATH] [--out FOLDER] [-- more mnistlab train options]
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

THRESHOLDS = (0.995, 0.997)
RECORDS = "probe.jsonl"


class TrainingClock:
    """Seconds since the benchmark began, less the seconds spent while paused (probing)."""

    def __init__(self, start: float, now=time.time):
        self.start, self.now, self.paused_seconds = start, now, 0.0

    def seconds(self) -> float:
        return self.now() - self.start - self.paused_seconds

    @contextlib.contextmanager
    def paused(self):
        began = self.now()
        try:
            yield
        finally:
            self.paused_seconds += self.now() - began


def member(start: float, folder: Path, train_args: list[str]) -> int:
    """One `mnistlab train`, with the probe; its epochs' test probabilities go to `folder`."""
    from mnistlab import backend

    backend.choose()  # before Keras is imported, as the CLI does
    import keras

    from mnistlab import training
    from mnistlab.cli import main
    from mnistlab.data import scale

    clock = TrainingClock(start)

    class Probe(keras.callbacks.Callback):
        def __init__(self, x_test):
            super().__init__()
            self.x_test = x_test

        def on_epoch_end(self, epoch, logs=None):
            record = {"epoch": epoch + 1, "seconds": clock.seconds()}
            with clock.paused():
                probs = self.model.predict(self.x_test, batch_size=1000, verbose=0)
                np.save(folder / f"epoch{epoch + 1}.npy", probs.astype(np.float32))
                with open(folder / RECORDS, "a") as f:
                    f.write(json.dumps(record) + "\n")

    fit = training.fit

    def probed_fit(config, data, callbacks, *args, **kwargs):
        return fit(config, data, [*callbacks, Probe(scale(data.x_test))], *args, **kwargs)

    training.fit = probed_fit
    return main(["train", "--quiet", *train_args])


def row(name: str, seconds: list[float], accuracies: list[float]) -> str:
    """For each threshold, seconds to the first epoch at or above it / to the epoch from
    which every later one stays there (one lucky epoch is not a model to rely on); then the
    last epoch's accuracy and seconds."""
    cells = []
    for threshold in THRESHOLDS:
        above = [a >= threshold for a in accuracies]
        if not any(above):
            cells.append(f"{'not reached':>16}")
            continue
        last_below = max((i for i, a in enumerate(above) if not a), default=-1)
        stays_at = f"{seconds[last_below + 1]:.0f}" if last_below + 1 < len(above) else "-"
        cells.append(f"{f'{seconds[above.index(True)]:.0f} / {stays_at}':>16}")
    return f"{name:<10} {' '.join(cells)} {accuracies[-1]:>11.2%} {seconds[-1]:>6.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cnn")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="the first member's; then +1 each")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None, help="where the runs go (default: a temp folder)")
    parser.add_argument("--member", nargs=2, metavar=("START", "FOLDER"), help=argparse.SUPPRESS)
    args, train_args = parser.parse_known_args()
    train_args = [a for a in train_args if a != "--"]
    if args.members < 1:
        parser.error("--members must be 1 or more")
    if args.member:
        sys.exit(member(float(args.member[0]), Path(args.member[1]), train_args))

    from mnistlab.data import load_mnist
    from mnistlab.metrics import accuracy

    y_test = load_mnist(args.data).y_test
    out = Path(args.out or tempfile.mkdtemp(prefix="time_to_accuracy-"))
    data = ["--data", args.data] if args.data else []
    # One GPU shared by several processes: each takes what it needs, not 75% of it.
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "PYTHONUNBUFFERED": "1"}
    start = time.time()
    processes, folders = [], []
    for i in range(args.members):
        folder = out / f"{args.preset}-seed{args.seed + i}"
        folder.mkdir(parents=True)
        folders.append(folder)
        command = [sys.executable, __file__, "--member", str(start), str(folder), "--",
                   "--preset", args.preset, "--seed", str(args.seed + i),
                   "--run-dir", str(folder / "run"), *data, *train_args]  # fmt: skip
        processes.append(subprocess.Popen(command, env=env))
    if any(p.wait() for p in processes):
        sys.exit("a member failed")
    trained = time.time() - start

    members = []
    for folder in folders:
        rows = [json.loads(line) for line in (folder / RECORDS).read_text().splitlines()]
        probs = [np.load(folder / f"epoch{r['epoch']}.npy") for r in rows]
        members.append(([r["seconds"] for r in rows], probs))
    epochs = min(len(p) for _, p in members)
    print(f"{args.preset}, {args.members} members, seeds {args.seed}-{args.seed + args.members - 1}"
          f", {epochs} epochs, options {' '.join(train_args) or 'none'}")  # fmt: skip
    print(f"{'':<10} " + " ".join(f"{f's to {t:.1%}':>16}" for t in THRESHOLDS))
    print(f"{'model':<10} " + " ".join(f"{'first / kept':>16}" for _ in THRESHOLDS)
          + f" {'last epoch':>11} {'at s':>6}")  # fmt: skip
    for i, (seconds, probs) in enumerate(members):
        print(row(f"seed {args.seed + i}", seconds, [accuracy(y_test, p) for p in probs]))
    print(f"all members' runs finished (final models saved and tested) at {trained:.0f} s")
    if args.members > 1:
        seconds = [max(m[0][e] for m in members) for e in range(epochs)]
        averaged = [np.mean([m[1][e] for m in members], axis=0) for e in range(epochs)]
        print(row("ensemble", seconds, [accuracy(y_test, p) for p in averaged]))
        ensemble = subprocess.run(
            [sys.executable, "-m", "mnistlab", "ensemble", *(str(f / "run") for f in folders),
             "--out", str(out / "ensemble"), *data],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        saved = time.time() - start
        found = re.search(r"test_accuracy=(\S+)", ensemble.stdout)
        print(f"saved ensemble of the final models (mnistlab ensemble): test accuracy "
              f"{found.group(1) if found else '?'}, saved at {saved:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()

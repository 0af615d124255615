"""`mnistlab train` against the published notebook's code, each as a whole process, in one
run of this script (figures from different runs on a shared machine do not compare).

The published code (`../shared/bench/seed_baseline.py`) runs as published: Keras on
TensorFlow, with TensorBoard histograms every epoch, in its own virtual environment
(`pip install tensorflow-cpu keras tensorboard`; give its Python with --published-python).
mnistlab runs `mnistlab train` with its defaults (the same network, checkpoints, early
stopping, TensorBoard histograms, and the test evaluation). The rounds alternate the two,
so that the machine's drift falls on both.

Prints each process's wall seconds (start to exit: imports, data, training, saving, test
evaluation) and test accuracy, and the ratio published / mnistlab per round and for the
medians. Target: at least 3x, at the same test accuracy or better.

mnistlab keeps JAX's compiled programs on disk (backend.py). The script gives it an empty
cache folder of its own and first runs it once on that, cold: the figure for a user's very
first training. The rounds after it find the programs compiled, as every later training
of the same model does.

Usage: python benchmarks/vs_published.py --published-python PATH [--rounds 1] [--data NPZ]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT.parent / "shared" / "bench" / "seed_baseline.py"


def timed(command: list[str], env: dict[str, str], pattern: str) -> tuple[float, float]:
    """Wall seconds of the whole process and the test accuracy it printed."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{command[:2]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    found = re.search(pattern, done.stdout)
    if not found:
        sys.exit(f"no test accuracy in the output of {command[:2]}:\n{done.stdout[-2000:]}")
    return seconds, float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published-python", required=True, help="a Python with TensorFlow")
    parser.add_argument("--published", type=Path, default=PUBLISHED)
    parser.add_argument("--data", default=os.environ.get("MNISTLAB_DATA"), help="mnist.npz")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not args.data:
        sys.exit("give --data or set MNISTLAB_DATA (the published code needs a file)")
    env = {**os.environ, "MNISTLAB_DATA": args.data}
    mnistlab = [str(Path(sys.executable).parent / "mnistlab"), "train", "--data", args.data]
    ratios, ours, theirs = [], [], []
    with tempfile.TemporaryDirectory(prefix="vs_published_") as tmp:
        ours_env = {**env, "KERAS_BACKEND": "jax", "XDG_CACHE_HOME": str(Path(tmp, "cache"))}
        ours_env.pop("JAX_COMPILATION_CACHE_DIR", None)
        cold = timed(
            [*mnistlab, "--run-dir", str(Path(tmp, "run-cold"))], ours_env,
            r"test_accuracy=([0-9.]+)",
        )  # fmt: skip
        print(f"mnistlab, cold compile cache: {cold[0]:.1f} s (test {cold[1]:.4f})", flush=True)
        for round_ in range(args.rounds):
            run_dir = Path(tmp, f"run-{round_}")
            mine = timed(
                [*mnistlab, "--run-dir", str(run_dir)], ours_env, r"test_accuracy=([0-9.]+)"
            )
            logs, out = Path(tmp, f"seedlogs-{round_}"), Path(tmp, f"seed-{round_}")
            seed = [args.published_python, str(args.published), args.data]
            published = timed(
                [*seed, "--logs", str(logs), "--out", str(out)],
                {**env, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"},
                r"test_acc=([0-9.]+)",
            )
            ours.append(mine[0])
            theirs.append(published[0])
            ratios.append(published[0] / mine[0])
            print(
                f"round {round_ + 1}: published {published[0]:.1f} s (test {published[1]:.4f}), "
                f"mnistlab {mine[0]:.1f} s (test {mine[1]:.4f}): {ratios[-1]:.2f}x",
                flush=True,
            )
    published, mine = statistics.median(theirs), statistics.median(ours)
    print(
        f"median: published {published:.1f} s, mnistlab {mine:.1f} s: "
        f"{published / mine:.2f}x (target 3x); cold cache {published / cold[0]:.2f}x"
    )


if __name__ == "__main__":
    main()

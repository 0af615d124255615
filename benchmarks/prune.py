"""What pruning buys and costs, measured in one run on this machine (`mnistlab prune`).

For each case, a real `mnistlab prune` of a finished run, then, for the parent and the
pruned run side by side:
  - test accuracy (from metrics.json);
  - size: the .keras file of the weights alone (no optimizer state), raw and xz-compressed,
    as the pruned run's metrics.json records them; and the int8 ONNX export
    (`mnistlab export --quantize int8`), xz-compressed;
  - speed: images/s through the Predictor (the NumPy path for MLPs, Keras for conv
    models) and through ONNX Runtime (the float ONNX export), one image per call and
    1,000 per call; the parent and the pruned model alternate, best of --repeats each.

Targets (the pruning issue): deep-mlp magnitude at 90%: <= 0.1 points lost, >= 5x smaller
compressed, >= 15x with int8; deep-mlp units: >= 3x faster at batch 1 and 1,000 with <= 0.2
points lost; cnn magnitude at 80%: <= 0.1 points lost.

Usage: python benchmarks/prune.py --mlp RUN --cnn RUN [--data NPZ] [--repeats 5]
       [--only mlp|cnn]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mnistlab import runs

# (parent, options): the cases, each a real `mnistlab prune`.
CASES = {
    "mlp": [
        ("magnitude 0.9", ["--method", "magnitude", "--sparsity", "0.9"]),
        ("units 0.75, activation score", ["--method", "units", "--score", "activation"]),
        ("units 0.75, l1 score", ["--method", "units", "--score", "l1"]),
        ("units 0.5, activation score", ["--method", "units", "--sparsity", "0.5"]),
    ],
    "cnn": [
        ("magnitude 0.8", ["--method", "magnitude", "--sparsity", "0.8"]),
        ("units 0.5, activation score", ["--method", "units", "--sparsity", "0.5"]),
        ("units 0.75, activation score", ["--method", "units"]),
    ],
}
SINGLES = 300
BATCH = 1000


def mnistlab(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mnistlab", *map(str, args)], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"mnistlab {args[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def exported(run_dir: Path, folder: Path) -> tuple[Path, int]:
    """The run's float ONNX export, and the xz-compressed bytes of its int8 one."""
    from mnistlab.prune import compressed_size

    onnx = folder / "model.onnx"
    mnistlab("export", run_dir, "--quantize", "int8", "--out", onnx)
    return onnx, compressed_size(runs.int8_path(onnx))


def images_per_second(predictors: list, x: np.ndarray, repeats: int) -> list[list[float]]:
    """[batch 1, batch 1000] images/s of each predictor; they alternate, best of repeats."""
    best = [[0.0, 0.0] for _ in predictors]
    for _ in range(repeats):
        for p, predictor in enumerate(predictors):
            for b, (n, batch) in enumerate(((SINGLES, 1), (BATCH, BATCH))):
                predictor.predict_proba(x[:batch])  # warm
                start = time.perf_counter()
                for i in range(0, n, batch):
                    predictor.predict_proba(x[i : i + batch])
                best[p][b] = max(best[p][b], n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp", type=Path, required=True, help="a finished deep-mlp run")
    parser.add_argument("--cnn", type=Path, required=True, help="a finished cnn run")
    parser.add_argument("--data", default=os.environ.get("MNISTLAB_DATA"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=CASES)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if args.data:
        os.environ["MNISTLAB_DATA"] = args.data
    from mnistlab.data import load_mnist
    from mnistlab.predictor import Predictor

    x = load_mnist(args.data).x_test[:BATCH]
    with tempfile.TemporaryDirectory(prefix="prune_bench_") as tmp:
        for kind, parent in (("mlp", args.mlp), ("cnn", args.cnn)):
            if args.only and kind != args.only:
                continue
            folder = Path(tmp, kind)
            folder.mkdir()
            parent_onnx, parent_int8_xz = exported(parent, folder)
            accuracy = runs.open_run(parent).metrics["test_accuracy"]
            print(f"{kind} parent {parent}: test {accuracy:.4f}; int8 ONNX xz "
                  f"{parent_int8_xz:,} B", flush=True)  # fmt: skip
            for i, (name, options) in enumerate(CASES[kind]):
                out = folder / f"pruned-{i}"
                start = time.perf_counter()
                mnistlab("prune", parent, *options, "--quiet", "--out", out)
                minutes = (time.perf_counter() - start) / 60
                after_folder = folder / f"export-{i}"
                after_folder.mkdir()
                onnx, int8_xz = exported(out, after_folder)
                m = runs.read_json(out / runs.METRICS)
                keras_speed = images_per_second(
                    [Predictor.from_run(parent), Predictor.from_run(out)], x, args.repeats
                )
                onnx_speed = images_per_second(
                    [Predictor.from_onnx(parent_onnx), Predictor.from_onnx(onnx)],
                    x, args.repeats,
                )  # fmt: skip
                print(
                    f"  {name}: test {m['test_accuracy']:.4f} "
                    f"({(m['test_accuracy'] - accuracy) * 100:+.2f} points), sparsity "
                    f"{m['sparsity']:.3f}, parameters {m['parameters_after']:,}, "
                    f"{m['epochs_run']} epochs, {minutes:.1f} min\n"
                    f"    size: .keras {m['file_bytes_before']:,} -> {m['file_bytes_after']:,} B, "
                    f"xz {m['xz_bytes_before']:,} -> {m['xz_bytes_after']:,} B "
                    f"({m['xz_bytes_before'] / m['xz_bytes_after']:.1f}x smaller), int8 xz "
                    f"{int8_xz:,} B ({m['xz_bytes_before'] / int8_xz:.1f}x "
                    f"smaller than the parent's xz .keras)\n"
                    f"    Predictor images/s batch 1: {keras_speed[0][0]:,.0f} -> "
                    f"{keras_speed[1][0]:,.0f} ({keras_speed[1][0] / keras_speed[0][0]:.2f}x); "
                    f"batch {BATCH}: {keras_speed[0][1]:,.0f} -> {keras_speed[1][1]:,.0f} "
                    f"({keras_speed[1][1] / keras_speed[0][1]:.2f}x)\n"
                    f"    ONNX Runtime images/s batch 1: {onnx_speed[0][0]:,.0f} -> "
                    f"{onnx_speed[1][0]:,.0f} ({onnx_speed[1][0] / onnx_speed[0][0]:.2f}x); "
                    f"batch {BATCH}: {onnx_speed[0][1]:,.0f} -> {onnx_speed[1][1]:,.0f} "
                    f"({onnx_speed[1][1] / onnx_speed[0][1]:.2f}x)",
                    flush=True,
                )


if __name__ == "__main__":
    main()

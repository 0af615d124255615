"""Images per second of every inference path for one run, against the NumPy floor.

Prints, from one run, for batch 1 and batch 1,000 of the real test images: Keras
`model.predict`, the Predictor (its NumPy fast path up to 64 images, Keras above),
ONNX Runtime on the float export and on the int8 export, and the floor: the model's
matrix products alone in NumPy (Dense-only models). Each figure is the best of 5 repeats.
Targets (reference MLP): the fastest path within 2x of the floor at batch 1,000, and
batch-1 latency under 0.2 ms.

The run's ONNX exports are made first if missing (`mnistlab export RUN --quantize int8`).
Usage: python benchmarks/inference_speed.py RUN [--data PATH]
"""

import argparse
import os
import timeit
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")


from mnistlab import runs
from mnistlab.config import ExportConfig
from mnistlab.data import load_mnist, scale
from mnistlab.export import export_run
from mnistlab.predictor import Predictor


def images_per_second(call, batch: int) -> float:
    call()  # compile or warm up
    number = max(1, 2000 // batch)
    return batch * number / min(timeit.repeat(call, number=number, repeat=5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = load_mnist(args.data)
    onnx_path = args.run / runs.EXPORTS / "final.onnx"
    if not runs.int8_path(onnx_path).is_file():
        export_run(ExportConfig(run=str(args.run), quantize="int8"), data)

    keras_ = Predictor.from_run(args.run)
    paths = {
        "Keras model.predict": lambda x: keras_.model.predict(x, batch_size=1000, verbose=0),
        "Predictor.predict_proba": keras_.predict_proba,
        "ONNX Runtime, float": Predictor.from_onnx(onnx_path).predict_proba,
        "ONNX Runtime, int8": Predictor.from_onnx(runs.int8_path(onnx_path)).predict_proba,
    }
    weights = [w for w in keras_.model.get_weights() if w.ndim == 2]
    layers = {type(layer).__name__ for layer in keras_.model.layers}
    if layers <= {"InputLayer", "Flatten", "Dropout", "Dense"}:

        def floor(x):
            h = x.reshape(len(x), -1)
            for w in weights:
                h = h @ w
            return h

        paths["NumPy floor (matrix products only)"] = floor
    x_all = scale(data.x_test)
    table = {name: {} for name in paths}
    for batch in (1, 1000):
        x = x_all[:batch]
        for name, call in paths.items():
            table[name][batch] = images_per_second(lambda call=call, x=x: call(x), batch)
    floor_rate = table.get("NumPy floor (matrix products only)", {})
    print(f"run: {args.run}")
    print(f"{'path':<36} {'batch 1 img/s':>14} {'latency ms':>11} {'batch 1000 img/s':>17} "
          f"{'floor / path':>13}")  # fmt: skip
    for name, rates in table.items():
        ratio = f"{floor_rate[1000] / rates[1000]:.2f}x" if floor_rate else "-"
        print(f"{name:<36} {rates[1]:>14,.0f} {1000 / rates[1]:>11.3f} {rates[1000]:>17,.0f} "
              f"{ratio:>13}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Is this candidate one whole digit? The reader's check on its segmentation.

An MNIST classifier has no answer for "two digits run together" or "half a digit": it
names a digit for anything, often at p > 0.99 (a touching 76 is a confident 2). So the
reader also asks this small network, trained on numbers written with MNIST's *training*
digits (documents.number_strings): every candidate the segmenter proposes, labelled by
whether it is exactly one digit. It sees the candidate as the classifier does (28x28)
plus its geometry, and runs in NumPy: no framework at inference.

The weights ship with the package (verifier.npz); `python -m mnistlab.verifier` makes
them again (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.resources
import io
from pathlib import Path

import numpy as np

from mnistlab import images, segment

WEIGHTS = "verifier.npz"
# A candidate is one digit when its ink columns and a digit's overlap this much (IoU).
MATCH = 0.75
GEOMETRY = 8
HIDDEN = (256, 64)
TRAIN_STRINGS = 12000
SEED = 1


def geometry(field: segment.Field, i: int, j: int, box: list[int]) -> np.ndarray:
    """The candidate pieces [i, j) with ink box [x, y, w, h], as numbers near 0..1."""
    _, _, w, h = box
    pieces = field.pieces
    right_cut = pieces[j].crossed if j < len(pieces) and pieces[j].blob == pieces[j - 1].blob else 0
    return np.array(
        [
            np.log(w / h),
            h / field.height,
            np.log(w / field.width),
            pieces[i].crossed / 3,
            right_cut / 3,
            pieces[j - 1].blob - pieces[i].blob,
            (j - i - 1) / 3,
            (pieces[i].left - (pieces[i - 1].right if i else pieces[i].left)) / field.height,
        ],
        np.float32,
    )


def candidate_inputs(field: segment.Field):
    """Every candidate digit of the field: its pieces (i, j), its 28x28 crop as the
    classifier sees it (N, 28, 28), its geometry (N, GEOMETRY) and its ink box [x, y, w, h]."""
    runs = field.candidates()
    crops, shapes, boxes = [], [], []
    for i, j in runs:
        ink, box = field.crop(i, j)
        crops.append(images.fit(ink))
        shapes.append(geometry(field, i, j, box))
        boxes.append(box)
    return runs, np.stack(crops), np.stack(shapes), boxes


class Verifier:
    """p(candidate is one whole digit), from its 28x28 crop and its geometry."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.layers = [(weights[f"w{k}"], weights[f"b{k}"]) for k in range(len(HIDDEN) + 1)]

    @classmethod
    def load(cls) -> Verifier:
        """The weights that ship with the package."""
        data = importlib.resources.files("mnistlab").joinpath(WEIGHTS).read_bytes()
        with np.load(io.BytesIO(data)) as weights:
            return cls(dict(weights))

    def __call__(self, crops: np.ndarray, shapes: np.ndarray) -> np.ndarray:
        """(N, 28, 28) crops and (N, GEOMETRY) -> (N,) probabilities."""
        h = np.concatenate([crops.reshape(len(crops), -1), shapes], axis=1).astype(np.float32)
        for k, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if k < len(self.layers) - 1:
                np.maximum(h, 0.0, out=h)
        return 1.0 / (1.0 + np.exp(-h[:, 0]))


def examples(x: np.ndarray, y: np.ndarray, n: int, seed: int):
    """(crops, geometry, labels) of every candidate in n numbers written with (x, y)."""
    from mnistlab import documents

    crops, shapes, labels = [], [], []
    for document in documents.number_strings(x, y, n, seed):
        try:
            field = segment.find_field(document.image.astype(np.float32))
        except images.ImageError:
            continue
        _, field_crops, field_shapes, boxes = candidate_inputs(field)
        crops.append(field_crops)
        shapes.append(field_shapes)
        for x, _, w, _ in boxes:
            iou = max(
                (min(x + w, b) - max(x, a)) / (max(x + w, b) - min(x, a)) for a, b in document.spans
            )
            labels.append(iou >= MATCH)
    return np.concatenate(crops), np.concatenate(shapes), np.array(labels, np.float32)


def train(data: Path | None, out: Path, strings: int = TRAIN_STRINGS) -> None:
    """Fit the verifier on candidates from numbers written with MNIST's training digits
    (the last 10,000 held out) and save its weights."""
    import keras

    from mnistlab.data import load_mnist

    mnist = load_mnist(data)
    x, y = mnist.x_train, mnist.y_train
    fit_x = examples(x[:-10_000], y[:-10_000], strings, SEED)
    val_x = examples(x[-10_000:], y[-10_000:], strings // 6, SEED + 1)
    print(f"{len(fit_x[2])} candidates, {fit_x[2].mean():.1%} of them one digit")

    def inputs(part):
        return np.concatenate([part[0].reshape(len(part[0]), -1), part[1]], axis=1)

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((784 + GEOMETRY,)),
            *(keras.layers.Dense(units, activation="relu") for units in HIDDEN),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
    )
    model.fit(
        inputs(fit_x),
        fit_x[2],
        batch_size=256,
        epochs=15,
        validation_data=(inputs(val_x), val_x[2]),
        callbacks=[keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)],
        verbose=2,
    )
    weights = {}
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for k, layer in enumerate(dense):
        kernel, bias = (keras.ops.convert_to_numpy(v) for v in layer.weights)
        weights[f"w{k}"], weights[f"b{k}"] = kernel.astype(np.float32), bias.astype(np.float32)
    np.savez_compressed(out, **weights)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the reader's segmentation verifier.")
    parser.add_argument("--data", type=Path, help="mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--out", type=Path, default=Path("src/mnistlab") / WEIGHTS)
    parser.add_argument("--strings", type=int, default=TRAIN_STRINGS)
    args = parser.parse_args()
    train(args.data, args.out, args.strings)


if __name__ == "__main__":
    main()

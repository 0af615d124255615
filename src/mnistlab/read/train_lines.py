"""Training of the line models (Keras, CTC): `python -m mnistlab.read.train_lines
[--augment] [--wide] [--paper SHARE] [--start WEIGHTS] [--out FILE]` writes the weights
that read.lines reads. From scratch, 12 epochs of 78,000 numbers take about 70 minutes on
2 cores, plus 15 to 20 minutes writing the numbers (on an H200 GPU with 16 cores, an epoch
of 109,000 numbers takes 13 seconds beside three other trainings, writing them 2.5
minutes); `--start` fine-tunes a weights file instead. The shipped files are
src/mnistlab/read/lines.npz, lines_augmented.npz and lines_wide.npz."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mnistlab.read.lines import (
    CONTEXT,
    CONV,
    HEIGHT,
    POOLS,
    WEIGHTS,
    LineModel,
    decode,
    digit_probabilities,
    padded_width,
    training_line,
)

# Training: numbers written with MNIST's training digits, in chunks of CHUNK strings.
TRAIN_STRINGS = 80_000
CHUNK = 2_000
VALIDATION = 2_000
EPOCHS = 12
LEARNING_RATE = 2e-3
FIRST_SEED = 1000  # of the chunks of numbers drawn; another gives other numbers
MAX_LABEL = 8  # documents.number_strings writes at most 8 digits
MAX_WIDTH = 256  # wider training lines (a few long numbers in large writing) are left out
WIDE = ((48, 64, 96), ((5, 192), (3, 192)))  # lines_wide.npz's filters: CONV, CONTEXT


def build(folded: bool = False, conv=CONV, context=CONTEXT):
    """The line model in Keras, of these filters; `folded`: each convolution with its
    batch normalisation folded in (a bias), as the weights files hold it, for fine-tuning
    them (adapt)."""
    import keras
    from keras import layers

    inputs = keras.Input((HEIGHT, None, 1))
    x = inputs
    for filters, pool in zip(conv, POOLS, strict=True):
        if folded:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.Activation("relu")(layers.BatchNormalization()(x))
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Permute((2, 1, 3))(x)  # (frames, rows, channels)
    x = layers.Reshape((-1, HEIGHT // 8 * conv[-1]))(x)
    for width, filters in context:
        x = layers.Conv1D(filters, width, padding="same", activation="relu")(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, layers.Dense(11)(x))  # logits; softmax in inference


def _examples(args: tuple[Path | None, int, int, bool, float]) -> list[tuple[np.ndarray, str]]:
    """Line images (uint8) and texts of n numbers written with MNIST's training digits
    (with `augment`, distorted in every other chunk, as other writers would draw them;
    `paper`: the share drawn as on real documents, documents.PAPER)."""
    from mnistlab import augment
    from mnistlab.data import load_mnist
    from mnistlab.read import documents

    data, seed, n, distort, paper = args
    mnist = load_mnist(data)
    x = augment.preview(mnist.x_train, seed) if distort and seed % 2 else mnist.x_train
    return [
        (line, document.text)
        for document in documents.number_strings(x, mnist.y_train, n, seed, paper=paper)
        if (line := training_line(document.image)) is not None
    ]


def _batches(examples, batch: int, rng: np.random.Generator, remainder: bool = False):
    """Shuffled batches of lines of one padded width: (x (B, H, W, 1), labels (B, L)), L
    MAX_LABEL or the batch's longest text (a user's labels, in adapt, may be longer); with
    `remainder`, each width's last, smaller batch too (few examples: keep them all)."""
    by_width: dict[int, list] = {}
    for image, text in examples:
        if image.shape[1] <= MAX_WIDTH:
            by_width.setdefault(padded_width(image.shape[1]), []).append((image, text))
    out = []
    for width, group in by_width.items():
        order = rng.permutation(len(group))
        for start in range(0, len(order) - (1 if remainder else batch) + 1, batch):
            members = order[start : start + batch]
            x = np.zeros((len(members), HEIGHT, width, 1), np.float32)
            longest = max(len(group[k][1]) for k in members)
            y = np.zeros((len(members), max(MAX_LABEL, longest)), np.int32)
            for row, k in enumerate(members):
                image, text = group[k]
                x[row, :, : image.shape[1], 0] = image / 255.0
                y[row, : len(text)] = [int(c) + 1 for c in text]
            out.append((x, y))
    rng.shuffle(out)
    return out


def train(
    data: Path | None,
    out: Path,
    strings: int = TRAIN_STRINGS,
    epochs: int = EPOCHS,
    augment: bool = False,
    paper: float = 0.0,
    start: Path | None = None,
    learning_rate: float = LEARNING_RATE,
    first_seed: int = FIRST_SEED,
    wide: bool = False,
):
    """Fit the line model with CTC and save its weights (batch norm folded in); from the
    weights file `start` where given (fine-tuning: no batch normalisation left to fit)."""
    import multiprocessing

    import keras

    seeds = [(data, first_seed + k, CHUNK, augment, paper) for k in range(strings // CHUNK)]
    with multiprocessing.get_context("spawn").Pool() as pool:
        examples = [e for part in pool.map(_examples, seeds) for e in part]
    validation, examples = examples[:VALIDATION], examples[VALIDATION:]
    print(f"{len(examples)} numbers to train on, {len(validation)} to check")

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)
            self.on_epoch_end()

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, k):
            return self.batches[k]

        def on_epoch_end(self):
            self.batches = _batches(examples, 64, self.rng)

    keras.utils.set_random_seed(0)
    if start is not None:
        line_model = LineModel.from_file(start)
        model = build(True, *line_model.architecture())
        load_weights(model, line_model)
    else:
        model = build(False, *(WIDE if wide else (CONV, CONTEXT)))
    batches = Batches()
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * len(batches))
    model.compile(keras.optimizers.Adam(schedule), loss=keras.losses.CTC())

    class Check(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            reader = LineModel(_folded(model))
            posteriors = reader([image / 255.0 for image, _ in validation])
            right = [
                "".join(str(digit_probabilities(p, f).argmax()) for f in decode(p)) == text
                for p, (_, text) in zip(posteriors, validation, strict=True)
            ]
            print(f"epoch {epoch + 1}: validation numbers read right {np.mean(right):.1%}")

    model.fit(batches, epochs=epochs, callbacks=[Check()], verbose=2)
    np.savez_compressed(out, **_folded(model))
    print(f"wrote {out}")


def load_weights(model, line_model: LineModel) -> None:
    """A folded Keras line model (build(folded=True)) given a weights file's values."""
    weights = line_model.weights()
    for k, layer in enumerate(layer for layer in model.layers if layer.weights):
        layer.set_weights([weights[f"w{k}"], weights[f"b{k}"]])


def _folded(model) -> dict[str, np.ndarray]:
    """Kernels and biases in order, each batch normalisation folded into its conv."""
    import keras

    layers: list[list[np.ndarray]] = []
    for layer in model.layers:
        values = [keras.ops.convert_to_numpy(v) for v in layer.weights]
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = values
            scale = gamma / np.sqrt(variance + layer.epsilon)
            kernel, bias = layers[-1]
            layers[-1] = [kernel * scale, bias * scale + beta - mean * scale]
        elif values:
            kernel = values[0]
            bias = values[1] if len(values) > 1 else np.zeros(kernel.shape[-1])
            layers.append([kernel, bias])
    weights = {}
    for k, (kernel, bias) in enumerate(layers):
        weights[f"w{k}"], weights[f"b{k}"] = kernel.astype(np.float32), bias.astype(np.float32)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the reader's line model (CTC).")
    parser.add_argument("--data", type=Path, help="mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument(
        "--augment", action="store_true", help=f"distort the digits: makes {WEIGHTS[1]}"
    )
    parser.add_argument("--wide", action="store_true", help=f"WIDE's filters: makes {WEIGHTS[2]}")
    parser.add_argument(
        "--out", type=Path, help="weights file to write (default: the shipped file's name, here)"
    )
    parser.add_argument(
        "--paper", type=float, default=0.0, help="share of numbers drawn as on real documents"
    )
    parser.add_argument("--start", type=Path, help="weights file to fine-tune")
    parser.add_argument("--strings", type=int, default=TRAIN_STRINGS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, help="of the numbers drawn")
    args = parser.parse_args()
    out = args.out or Path(WEIGHTS[2 if args.wide else int(args.augment)])
    train(
        args.data, out, args.strings, args.epochs, args.augment, args.paper, args.start,
        args.learning_rate, args.first_seed, args.wide,
    )  # fmt: skip


if __name__ == "__main__":
    main()

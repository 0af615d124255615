"""prune(config, data, run_dir): a finished run's model made sparse or narrower, fine-tuned,
and saved as a new run that every other command uses like any run.

- magnitude: gradual pruning as in Zhu and Gupta (2017), "To prune, or not to prune".
  While fine-tuning, each big kernel's smallest weights are masked, the masked fraction
  rising along s_t = s_f (1 - (1 - t/n)^3) over the first half of the epochs. A mask is a
  non-trainable weight of its layer, so the layer computes with kernel * mask at every
  step on every backend. Each raise of the sparsity sets the newly masked weights to exact
  zeros. The saved model is plain Keras with those zeros in it.
- units: the least important hidden units and conv filters are removed at once. The model
  is rebuilt narrower from the weights kept, and fine-tuned.
"""

from __future__ import annotations

import dataclasses
import lzma
import math
import tempfile
import time
import typing
from pathlib import Path

import keras
import numpy as np

from mnistlab import runs
from mnistlab.config import PruneConfig, TrainConfig
from mnistlab.data import Mnist, scale
from mnistlab.errors import UserError
from mnistlab.metrics import measure
from mnistlab.models import build_model
from mnistlab.predictor import Predictor
from mnistlab.training import fit

# Kernels with fewer weights (the first conv's 144) are left whole: few bytes, and every
# later layer depends on them.
MIN_PRUNED_WEIGHTS = 1000
# Fine-tuning starts from a trained model: a short patience.
PATIENCE = 3
# Training images the activation score is measured on.
SCORE_IMAGES = 2000
# Images timed for the inference speed in metrics.json: one at a time, and in one batch.
TIMED_SINGLES = 200
TIMED_BATCH = 1000
OUTPUT_LAYER = "probabilities"
# The fine-tuning learning rate, as a fraction of the run's (measured on deep-mlp):
# a masked model is still the trained one; a narrowed one must learn again (a tenth of the
# rate left it 1.35 points down after 10 epochs, against 0.13 at the full rate).
LR_FACTOR = {"magnitude": 0.1, "units": 1.0}


class PruneError(UserError, ValueError):
    """A run that cannot be pruned as asked; the message says why."""


def polynomial_sparsity(step: int, final: float, steps: int, initial: float = 0.0) -> float:
    """Zhu and Gupta's schedule: the sparsity after `step` of `steps` pruning steps."""
    done = min(max(step, 0), steps) / steps
    return final + (initial - final) * (1 - done) ** 3


class _Masked:
    """A Dense or Conv2D that computes with kernel * mask; the mask a non-trainable weight,
    so that it is part of the state a compiled training step is given (on JAX too)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.weight_mask = self.add_weight(
            name="weight_mask", shape=self._kernel.shape, initializer="ones", trainable=False
        )

    @property
    def kernel(self):
        return super().kernel * self.weight_mask

    def mask_smallest(self, sparsity: float) -> None:
        """Mask the `sparsity` fraction of the kernel with the smallest magnitudes (those
        masked already first, having none), and set them to exact zeros."""
        kernel = keras.ops.convert_to_numpy(self.kernel)
        smallest = np.argsort(np.abs(kernel), axis=None, kind="stable")
        mask = np.ones(kernel.size, np.float32)
        mask[smallest[: round(sparsity * mask.size)]] = 0
        mask = mask.reshape(kernel.shape)
        self.weight_mask.assign(mask)
        self._kernel.assign(kernel * mask)


@keras.saving.register_keras_serializable("mnistlab")
class MaskedDense(_Masked, keras.layers.Dense):
    pass


@keras.saving.register_keras_serializable("mnistlab")
class MaskedConv2D(_Masked, keras.layers.Conv2D):
    pass


PLAIN = {MaskedDense: keras.layers.Dense, MaskedConv2D: keras.layers.Conv2D}


class RaiseSparsity(keras.callbacks.Callback):
    """Before each of the first `steps` epochs, raise every masked layer's sparsity along
    the schedule; from epoch `steps` on, the final sparsity holds."""

    def __init__(self, layers: list[_Masked], final: float, steps: int):
        super().__init__()
        self.layers, self.final, self.steps = layers, final, steps

    def on_epoch_begin(self, epoch, logs=None):
        if epoch < self.steps:
            for layer in self.layers:
                layer.mask_smallest(polynomial_sparsity(epoch + 1, self.final, self.steps))


def prune(config: PruneConfig, data: Mnist, run_dir: Path, verbose: int | str = 0) -> runs.Run:
    """Prune, fine-tune, save and test; returns the finished pruned run."""
    parent = runs.open_run(config.run)
    if parent.kind != "train":
        raise PruneError(f"{config.run} is an ensemble; prune its members, then ensemble them")
    before = parent.model
    rate = config.learning_rate or parent.config.learning_rate * LR_FACTOR[config.method]
    tune_config = dataclasses.replace(
        parent.config,
        preset=f"{parent.config.preset}-pruned",
        epochs=config.epochs,
        learning_rate=rate,
        lr_schedule="constant",
        patience=PATIENCE,
        final_weights="best",  # _fine_tune restores them
        seed=config.seed,
    )
    run_dir = Path(run_dir)
    with runs.locked(run_dir, "written"):
        started = time.perf_counter()
        if config.method == "magnitude":
            model, callbacks, start = _masked_for(before, config.target, tune_config.epochs)
        else:
            model, tune_config = _narrowed(before, tune_config, config.target, config.score, data)
            callbacks, start = [], 0
        record = runs.run_record(tune_config, data.source, data.sha256, keras.backend.backend())
        record["pruned"] = {"parent": str(parent.path), **config.to_dict()}
        runs.start(run_dir, record)  # an unfinished folder of the same prune is redone
        model, history = _fine_tune(model, tune_config, data, callbacks, start, verbose)
        if config.method == "magnitude":
            model = _unmasked(model)
        seconds = time.perf_counter() - started
        runs.write_json(run_dir / runs.HISTORY, history)
        for name in (runs.FINAL_MODEL, runs.BEST_MODEL):
            with runs.atomic_path(run_dir / name) as tmp:
                model.save(tmp)
        after = Predictor(str(run_dir / runs.FINAL_MODEL), model)
        test, _ = measure(after, data.x_test, data.y_test)
        runs.finish(run_dir, {
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "epochs_run": len(history),
            "training_seconds": seconds,
            "best_epoch": min(history[start:], key=lambda r: r["val_loss"])["epoch"],
            "best_val_accuracy": max(r["val_accuracy"] for r in history[start:]),
            **_comparison(parent, after, data),
        })  # fmt: skip
    return runs.open_run(run_dir)


def _fine_tune(model, config: TrainConfig, data: Mnist, callbacks: list, start: int, verbose):
    """Fit with early stopping on val_loss from epoch `start` (0-based), the best weights
    restored; the model and its per-epoch logs."""
    history = keras.callbacks.History()
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True,
        start_from_epoch=start,
    )  # fmt: skip
    model = fit(config, data, [*callbacks, history, stopping], verbose, model=model)
    keys = list(history.history)
    rows = zip(*history.history.values(), strict=True)
    return model, [
        {"epoch": i, **dict(zip(keys, map(float, row), strict=True))}
        for i, row in enumerate(rows, start=1)
    ]


def _masked_for(before, sparsity: float, epochs: int):
    """The masked copy of `before`, the callback raising its sparsity, and the epoch from
    which the final sparsity holds."""
    model = _masked(before)
    masked = [layer for layer in model.layers if isinstance(layer, _Masked)]
    total = sum(math.prod(k.shape) for k in _kernels(model))
    pruned = sum(math.prod(layer._kernel.shape) for layer in masked)
    # The small kernels stay whole, so the big ones go further to reach `sparsity` overall.
    per_layer = sparsity * total / pruned
    if per_layer >= 1:
        raise PruneError(
            f"sparsity {sparsity} would remove every weight of the layers pruned "
            f"({pruned:,} of {total:,}); choose a lower --sparsity"
        )
    steps = math.ceil(epochs / 2)
    return model, [RaiseSparsity(masked, per_layer, steps)], steps - 1


def _kernels(model) -> list:
    return [
        layer.kernel
        for layer in model.layers
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
    ]


def _masked(model: keras.Model) -> keras.Model:
    """A copy of `model` whose big hidden Dense and Conv2D layers are masked (all ones)."""

    def swap(layer):
        big = math.prod(getattr(layer, "kernel", np.empty(0)).shape) >= MIN_PRUNED_WEIGHTS
        if type(layer) in PLAIN.values() and layer.name != OUTPUT_LAYER and big:
            masked = {keras.layers.Dense: MaskedDense, keras.layers.Conv2D: MaskedConv2D}
            return masked[type(layer)].from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    return _copy(model, swap)


def _unmasked(model: keras.Model) -> keras.Model:
    """The plain Keras model computing what the masked `model` does, zeros included."""

    def swap(layer):
        return PLAIN.get(type(layer), type(layer)).from_config(layer.get_config())

    return _copy(model, swap)


def _copy(model: keras.Model, swap) -> keras.Model:
    """`model` rebuilt with each layer swapped, holding the same weights (a masked layer's
    kernel as it computes with it)."""
    clone = keras.models.clone_model(model, clone_function=swap)
    for old, new in zip(model.layers, clone.layers, strict=True):
        weights = old.get_weights()
        if isinstance(old, _Masked):  # [kernel, (bias,) mask]
            *weights, mask = weights
            weights[0] = weights[0] * mask
        if isinstance(new, _Masked):
            weights.append(np.ones_like(weights[0]))
        new.set_weights(weights)
    return clone


def _narrowed(before, config: TrainConfig, sparsity: float, score: str, data: Mnist):
    """`before` rebuilt without the `sparsity` fraction of each hidden layer's units (conv
    filters) that score lowest, the weights kept copied; and the config that builds it."""
    names = [f"conv_{i}" for i in range(1, len(config.conv_filters) + 1)]
    names += [f"hidden_{i}" for i in range(1, len(config.hidden_units) + 1)]
    scores = _scores(before, names, config, data) if score == "activation" else _l1(before, names)
    keep = {}
    for name in names:
        k = max(1, round((1 - sparsity) * len(scores[name])))
        keep[name] = np.sort(np.argsort(-scores[name], kind="stable")[:k])
    narrow = dataclasses.replace(
        config,
        conv_filters=tuple(len(keep[n]) for n in names if n.startswith("conv")),
        hidden_units=tuple(len(keep[n]) for n in names if n.startswith("hidden")),
        # Narrow layers need less dropout: 0.3 on deep-mlp's quarter-width layers cost 0.3
        # points of test accuracy against 0.075.
        dropout=tuple(round(d * (1 - sparsity), 3) for d in config.layer_dropout),
    )
    model = build_model(narrow)
    previous = None  # the layer before, whose kept units (channels) are this one's inputs
    for name in [*names, OUTPUT_LAYER]:
        kernel, *rest = before.get_layer(name).get_weights()
        if previous is not None:
            kept_in = keep[previous]
            if kernel.ndim == 4:  # conv: (height, width, in, out)
                kernel = kernel[:, :, kept_in, :]
            elif previous.startswith("conv"):  # after Flatten: rows are (pixel, channel)
                channels = len(scores[previous])
                kernel = kernel.reshape(-1, channels, kernel.shape[1])[:, kept_in, :]
                kernel = kernel.reshape(-1, kernel.shape[2])
            else:
                kernel = kernel[kept_in, :]
        kept = keep.get(name)
        if kept is not None:
            kernel, rest = kernel[..., kept], [w[kept] for w in rest]
            if config.batch_norm:
                bn = before.get_layer(f"{name}_bn").get_weights()
                model.get_layer(f"{name}_bn").set_weights([w[kept] for w in bn])
        model.get_layer(name).set_weights([kernel, *rest])
        previous = name
    return model, narrow


def _l1(model, names: list[str]) -> dict[str, np.ndarray]:
    """Each unit's (filter's) L1 norm of its incoming weights."""
    scores = {}
    for name in names:
        kernel = model.get_layer(name).get_weights()[0]
        scores[name] = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return scores


def _scores(model, names: list[str], config: TrainConfig, data: Mnist) -> dict[str, np.ndarray]:
    """Each unit's (filter's) mean |activation| after its ReLU, on training images, times
    the L1 norm of the weights that carry it on: what removing it takes away."""
    relu = {n: model.get_layer(f"{n}_relu" if config.batch_norm else n).output for n in names}
    # Named outputs: Keras gives a dict back even for one (a list of one comes back bare).
    probe = keras.Model(model.inputs, relu)
    activations = probe.predict(scale(data.x_train[:SCORE_IMAGES]), verbose=0)
    following = [*names[1:], OUTPUT_LAYER]
    scores = {}
    for name, after in zip(names, following, strict=True):
        a = activations[name]
        mean = np.abs(a).reshape(-1, a.shape[-1]).mean(axis=0)
        kernel = model.get_layer(after).get_weights()[0]
        if kernel.ndim == 4:  # the next conv: (height, width, in, out)
            outgoing = np.abs(kernel).sum(axis=(0, 1, 3))
        elif kernel.shape[0] != len(mean):  # the first Dense after Flatten
            outgoing = np.abs(kernel).reshape(-1, len(mean), kernel.shape[1]).sum(axis=(0, 2))
        else:
            outgoing = np.abs(kernel).sum(axis=1)
        scores[name] = mean * outgoing
    return scores


def _comparison(parent: runs.Run, after: Predictor, data: Mnist) -> dict[str, typing.Any]:
    """What pruning bought and cost: before and after, side by side."""
    before = Predictor(str(parent.path / runs.FINAL_MODEL), parent.model)
    weights = [_kernels(p.model) for p in (before, after)]
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Both re-saved alike: a run's own file holds its trained optimizer state, which
        # a copy's fresh optimizer replaces with zeros that compression removes.
        for when, predictor in (("before", before), ("after", after)):
            path = Path(tmp, f"{when}.keras")
            _unmasked(predictor.model).save(path)
            sizes[f"file_bytes_{when}"] = path.stat().st_size
            sizes[f"xz_bytes_{when}"] = compressed_size(path)
    return {
        "parent": str(parent.path),
        "parent_test_accuracy": parent.metrics["test_accuracy"],
        "parameters_before": parent.model.count_params(),
        "parameters_after": after.model.count_params(),
        "nonzero_parameters_before": _nonzero(parent.model),
        "nonzero_parameters_after": _nonzero(after.model),
        "sparsity": 1
        - sum(_nonzero_of(k) for k in weights[1]) / sum(math.prod(k.shape) for k in weights[0]),
        **sizes,
        "images_per_second_batch_1_before": _speed(before, data, 1),
        "images_per_second_batch_1_after": _speed(after, data, 1),
        f"images_per_second_batch_{TIMED_BATCH}_before": _speed(before, data, TIMED_BATCH),
        f"images_per_second_batch_{TIMED_BATCH}_after": _speed(after, data, TIMED_BATCH),
    }


def compressed_size(path: Path) -> int:
    """Bytes of the file compressed with xz (LZMA, preset 9): what zeros save on disk."""
    return len(lzma.compress(Path(path).read_bytes(), preset=9))


def _nonzero_of(kernel) -> int:
    return int(np.count_nonzero(keras.ops.convert_to_numpy(kernel)))


def _nonzero(model) -> int:
    return sum(int(np.count_nonzero(w)) for w in model.get_weights())


def _speed(predictor: Predictor, data: Mnist, batch: int) -> float:
    """Images per second through the Predictor, `batch` images a call (best of 3)."""
    n = TIMED_SINGLES if batch == 1 else TIMED_BATCH
    x = data.x_test[:n]
    predictor.predict_proba(x[:batch])  # compiled and warm
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, n, batch):
            predictor.predict_proba(x[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return n / best

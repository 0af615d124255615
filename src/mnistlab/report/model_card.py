"""model_card.md: what a run's final model is, how it was made, how well it reads digits
and where it should not be trusted, in the sections of Mitchell et al. (2019), "Model
Cards for Model Reporting", with Hugging Face's metadata header."""

from __future__ import annotations

import dataclasses
import importlib.resources
import shlex
import string
import typing

from mnistlab.config import PRESETS, TrainConfig, flag_of
from mnistlab.runs import Run

# The card's text, with $name fields that render fills in.
TEMPLATE = importlib.resources.files(__package__).joinpath("model_card.md")
# The share of accepted answers that must be right for the reject threshold quoted.
RELIABLE = 0.995


def render(
    run: Run,
    test: dict[str, typing.Any],
    other: dict[str, typing.Any],
    reject: dict[str, float] | None,
    strings: dict[str, typing.Any] | None = None,
) -> str:
    """The card of the run's final model, from its MNIST test metrics (`test`), its
    metrics on scikit-learn's digits (`other`), the reject threshold that leaves RELIABLE
    of the accepted answers right on the test set, and the string benchmark if it ran."""
    p = run.provenance
    versions = ", ".join(
        f"{k.removesuffix('_version')} {v}"
        for k, v in p.items()
        if k.endswith("_version") and k not in ("mnistlab_version", "python_version")
    )
    per_class = "\n".join(
        f"| {d} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |"
        for d, s in test["per_class"].items()
    )
    if reject:
        threshold = (
            f"At `--min-confidence {reject['threshold']:.6g}` the model answers "
            f"{reject['coverage']:.1%} of the MNIST test digits and {reject['accuracy']:.2%} "
            f"of those answers are right; below it, it says `unsure`."
        )
    else:
        threshold = f"No threshold makes {RELIABLE:.1%} of its MNIST test answers right."
    reading = ""
    if strings:
        reading = (
            f"\nWhole numbers (`mnistlab read`, {strings['n']} numbers written with these "
            f"test digits, seed {strings['seed']}): {strings['string_accuracy']:.2%} read "
            f"right, digits {strings['digit_accuracy']:.2%}.\n"
        )
    kind = "an ensemble (mean of its members' probabilities)" if run.preset == "ensemble" else (
        f"the `{run.preset}` preset"
    )  # fmt: skip
    return string.Template(TEMPLATE.read_text()).substitute(
        name=run.path.name,
        kind=kind,
        mnistlab_version=p.get("mnistlab_version", "?"),
        architecture=_architecture(run),
        backend=p.get("backend", "?"),
        versions=versions,
        python_version=p.get("python_version", "?"),
        cpu=p.get("cpu", "CPU not recorded"),
        created=p.get("created", "?"),
        training=_training(run),
        reliable=f"{RELIABLE:.1%}",
        data_source=run.data_source,
        data_sha256=run.data_sha256,
        training_digits=_training_digits(run),
        test_n=f"{test['n']:,}",
        test_accuracy=f"{test['accuracy']:.4f}",
        test_loss=f"{test['loss']:.4f}",
        other_n=f"{other['n']:,}",
        other_accuracy=f"{other['accuracy']:.4f}",
        other_loss=f"{other['loss']:.4f}",
        threshold=threshold,
        reading=reading,
        per_class=per_class,
        reproduce=reproduce(run),
    )


def _training(run: Run) -> str:
    m = run.metrics or {}
    seconds = f"{m.get('training_seconds', 0):.0f} s of training"
    if not isinstance(run.config, TrainConfig):
        return f"Its members ran {m.get('epochs_run', '-')} epochs in all, {seconds}. File: \
`final_model.keras`."
    which = "the last" if run.config.final_weights == "last" else "lowest val_loss"
    return (
        f"Epochs run: {m['epochs_run']}, final weights from epoch {m['best_epoch']} ({which}); "
        f"{seconds}. Files: `final_model.keras` (this card), `best_model.keras` "
        "(highest val_accuracy)."
    )


def _training_digits(run: Run) -> str:
    c = run.config
    if not isinstance(c, TrainConfig):
        return "each member's own (see their cards)"
    digits = f"the first {c.limit:,} training digits" if c.limit else "the training digits"
    return (
        f"{digits}, the last {c.validation_split:.0%} of them held out for validation "
        "(early stopping and the checkpoints)"
    )


def _architecture(run: Run) -> str:
    c = run.config
    if not isinstance(c, TrainConfig):
        return f"{len(c.members)} members: " + ", ".join(f"`{m}`" for m in c.members)
    layers = [f"Conv2D {f} 3x3 + max-pool" for f in c.conv_filters]
    layers += [f"Dense {u} ReLU" for u in c.hidden_units]
    extras = [f"dropout {c.dropout}"] if c.dropout else []
    extras += [f"L2 {c.l2}"] if c.l2 else []
    extras += ["augmented batches"] if c.augment else []
    return (
        " -> ".join([*layers, "Dense 10 softmax"])
        + f"; {c.optimizer}, learning rate {c.learning_rate} ({c.lr_schedule}), batch "
        + f"{c.batch_size}, seed {c.seed}"
        + "".join(f"; {e}" for e in extras)
    )


def reproduce(run: Run) -> str:
    """The command that trains this run again: its preset, and a flag for each value that
    differs from the preset's."""
    c = run.config
    if not isinstance(c, TrainConfig):
        members = " ".join(shlex.quote(m) for m in c.members)
        out = shlex.quote(run.path.name)
        return f"mnistlab ensemble {members} --model {c.model} --out {out}  # members trained first"
    preset = PRESETS.get(c.preset, TrainConfig())
    words = ["mnistlab", "train", "--preset", c.preset]
    hidden = []
    for field in dataclasses.fields(TrainConfig):
        value = getattr(c, field.name)
        if field.name == "preset" or value == getattr(preset, field.name):
            continue
        if not field.metadata["cli"]:
            hidden.append(field.name)
            continue
        words += [flag_of(field)] if value is True else [flag_of(field), str(value)]
    words += ["--data", run.data_source]
    command = " ".join(shlex.quote(w) for w in words)
    if hidden:  # a tuned configuration: set from Python or --from-study, not by flags
        command += f"  # and {', '.join(hidden)} as in config.json (--from-study sets them)"
    return command

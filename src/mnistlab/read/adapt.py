"""adapt(config, out): a copy of a run whose reader is fitted to a user's own labelled
documents (a bank's cheques, an archive's registers).

The line models are fine-tuned (CTC, from the run's line weights) on the labelled fields
as segment.py finds them; the classifier stays as trained on MNIST. A share of the labels
is held out: the reader is measured on it before and after, with and without the
classifier beside the adapted line models, and the reader that reads most of it is kept
(the run's own where adapting lost: with few fields it can). Its threshold is set there,
as the lowest at which the accepted readings are ACCEPTED_RIGHT right, and never below
the package's MIN_CONFIDENCE: a reader fitted to a few hundred fields is surer than it is
right on writers it never saw (on the benchmark's cheques, what a held-out threshold of
0.97 accepts is 95% right; what 0.997 accepts, 97%). The copy is a run like any other
(read, serve, evaluate and the Python API take it), with its reader in reader/. Each
finished epoch is saved, so a killed adaptation resumes.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistlab import images, progress, runs
from mnistlab.config import AdaptConfig
from mnistlab.errors import UserError
from mnistlab.metrics import risk_coverage
from mnistlab.predictor import Predictor
from mnistlab.read import labelled, lines
from mnistlab.read.reader import (
    MIN_CONFIDENCE,
    Reader,
    accepted_at,
    judged,
    reader_of,
    sure_mistakes,
)

# The threshold makes the accepted held-out readings at least this often right.
ACCEPTED_RIGHT = 0.99
BATCH = 16
LEARNING_RATE = 3e-3
# The line models' first convolutions stay as trained: they see strokes, which MNIST's
# digits teach well, and fine-tuned on a few hundred fields they learn those by heart.
# Measured on four splits of the dev cheques (300 to train on, 140 read), the adapted
# reader reads 2.9 points more with the first two frozen (1.4 to 4.3 on each split), and
# 0.9 more of the 697 register cells.
FROZEN = 2
# The run's files that the copy keeps (not its reports, exports or TensorBoard logs).
RUN_FILES = (runs.CONFIG, runs.METRICS, runs.HISTORY, runs.FINAL_MODEL, runs.BEST_MODEL)

STATE = "state"  # in reader/: each line model's last finished epoch, while it trains


@dataclass(frozen=True)
class Adapted:
    """An adapted reader: its run folder and its record (reader.json)."""

    path: Path
    record: dict[str, typing.Any]


def adapt(config: AdaptConfig, out: Path) -> Adapted:
    """Fit the run's reader to the labelled folder and write it, with a copy of the run,
    into `out`; resume an adaptation of the same config killed there."""
    run = runs.open_run(Path(config.run))
    data = labelled.load(Path(config.folder), Path(config.labels) if config.labels else None)
    held = max(1, round(config.hold_out * len(data.texts)))
    if len(data.texts) - held < 1:
        raise UserError(f"{len(data.texts)} labelled images: too few to hold some out and adapt")
    order = np.random.default_rng(config.seed).permutation(len(data.texts))
    test, train = sorted(order[:held]), sorted(order[held:])
    with progress.step(f"reading {len(data.paths)} labelled images"):
        decoded = [_decoded(path) for path in data.paths]
    out = Path(out)
    start = time.perf_counter()
    with runs.locked(out, "adapted"):
        folder = _start(out, run, config)
        base = reader_of(run.path)  # the run's reader, as read uses it
        predictor = Predictor.from_run(run, config.model)
        examples = _examples([decoded[k] for k in train], [data.texts[k] for k in train])
        held_out = (
            [decoded[k] for k in test],
            [data.texts[k] for k in test],
            [data.paths[k].name for k in test],
        )
        with progress.step(f"reading the {held} held-out images as the run reads them"):
            before = _measure(Reader.fitted(predictor, base, 0.0), *held_out)
        resumed: dict[str, int] = {}  # the epoch each line model's training resumed from
        fitted = [
            _fit(folder, name, model, examples, config, resumed)
            for name, model in zip(base.names, base.line_models, strict=True)
        ]
        with progress.step("reading them with the adapted reader"):
            both = _measure(Reader(predictor, 0.0, fitted), *held_out)
            alone = _measure(Reader(predictor, 0.0, fitted, classifier=False), *held_out)
        # The classifier knows MNIST's writing only: it reads each digit beside the adapted
        # line models only where that reads more of the held-out fields; and the run's
        # reader stays where the adapted one reads fewer of them than it did.
        classifier = both["accuracy"] >= alone["accuracy"]
        after = both if classifier else alone
        adapted = after["accuracy"] >= before["accuracy"]
        if not adapted:
            after, classifier = before, base.classifier
        kept = fitted if adapted else base.line_models
        for name, model in zip(base.names, kept, strict=True):
            _save(model, folder / name)
        record = {
            "config": config.to_dict(),
            "labels_sha256": _labels_digest(data),
            "trained_on": len(train),
            "trained_lines": len(examples),  # those whose ink segment.py found
            "held_out": held,
            "before": before,
            "after": after,
            "adapted": adapted,  # False: the run's line models, which read more held out
            "classifier": classifier,
            "line_models_and_classifier": both,  # the adapted line models
            "line_models_alone": alone,
            "min_confidence": after["threshold"],
            "seconds": round(time.perf_counter() - start, 1),
            "resumed": resumed,
            "line_models": base.names,  # the files in this folder, read in this order
        }
        runs.write_json(folder / runs.READER_RECORD, record)  # last: the reader is done
        shutil.rmtree(folder / STATE, ignore_errors=True)
    return Adapted(out, record)


def _decoded(path: Path) -> images.Decoded:
    try:
        return images.decode(path)
    except images.ImageError as e:
        raise UserError(f"{path}: {e}") from None


def _start(out: Path, run: runs.Run, config: AdaptConfig) -> Path:
    """The copy's reader folder: a new copy of the run, or the one a killed adaptation of
    the same config left (checked, and its copy completed)."""
    folder = out / runs.READER
    if (folder / runs.READER_RECORD).is_file():
        raise runs.RunError(f"{out} holds a finished adapted reader; choose another folder")
    if (folder / runs.ADAPT_CONFIG).is_file():
        if runs.read_json(folder / runs.ADAPT_CONFIG) != config.to_dict():
            raise runs.RunError(
                f"{out} holds an unfinished adaptation with other options; resume it with the "
                "same options or choose another folder"
            )
    elif any(p.name != runs.LOCK for p in out.iterdir()):
        raise runs.RunError(f"{out} exists and is not empty; choose another folder")
    else:
        folder.mkdir()
        runs.write_json(folder / runs.ADAPT_CONFIG, config.to_dict())  # first: a kill resumes
    for name in RUN_FILES:
        if (run.path / name).is_file() and not (out / name).is_file():
            with runs.atomic_path(out / name) as tmp:
                shutil.copyfile(run.path / name, tmp)
    return folder


def _examples(decoded: list[images.Decoded], texts: list[str]) -> list[tuple[np.ndarray, str]]:
    """Line images (uint8) and texts of the fields whose ink segment.py finds."""
    out = [
        (line, text)
        for image, text in zip(decoded, texts, strict=True)
        if (line := lines.training_line(image.gray)) is not None
    ]
    if not out:
        raise UserError("no ink found in any training image: nothing to adapt to")
    return out


def _fit(
    folder: Path,
    name: str,
    model: lines.LineModel,
    examples: list[tuple[np.ndarray, str]],
    config: AdaptConfig,
    resumed: dict[str, int],
) -> lines.LineModel:
    """Fine-tune one line model with CTC; its weights file is written into STATE at the
    end, and the Keras model (optimizer too) after each epoch, for a resume (noted in
    `resumed`)."""
    import keras

    from mnistlab.read import train_lines

    saved = folder / STATE / f"{Path(name).stem}.keras"
    done_file = folder / STATE / f"{Path(name).stem}.json"
    done = runs.read_json(done_file)["epochs"] if done_file.is_file() else 0
    if (folder / STATE / name).is_file() and done == config.epochs:  # killed after it
        resumed[name] = done
        return lines.LineModel.from_file(folder / STATE / name)
    if done and saved.is_file():
        net = keras.saving.load_model(saved)
        resumed[name] = done
    else:
        done = 0
        keras.utils.set_random_seed(config.seed)
        net = train_lines.build(True, *model.architecture())
        train_lines.load_weights(net, model)
        for layer in [x for x in net.layers if isinstance(x, keras.layers.Conv2D)][:FROZEN]:
            layer.trainable = False
        steps = -(-len(examples) // BATCH) * config.epochs
        schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps)
        net.compile(keras.optimizers.Adam(schedule), loss=keras.losses.CTC())
    rng = np.random.default_rng([config.seed, done])
    (folder / STATE).mkdir(exist_ok=True)
    with progress.bar(config.epochs, "epoch") as bar:
        bar.set_description(f"adapting {name}")
        bar.update(done)
        for epoch in range(done, config.epochs):
            for x, y in train_lines._batches(examples, BATCH, rng, remainder=True):
                net.train_on_batch(x, y)
            with runs.atomic_path(saved) as tmp:
                net.save(tmp)
            runs.write_json(done_file, {"epochs": epoch + 1})
            bar.update(1)
    fitted = lines.LineModel(train_lines._folded(net))
    _save(fitted, folder / STATE / name)
    return fitted


def _save(model: lines.LineModel, path: Path) -> None:
    with runs.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **model.weights())


def _measure(
    reader: Reader, decoded: list[images.Decoded], texts: list[str], names: list[str]
) -> dict:
    """Exact readings, and the lowest threshold of at least MIN_CONFIDENCE (with its
    share accepted) at which the accepted are ACCEPTED_RIGHT right: 1.0, accepting none,
    where readings that sure are too often wrong; MIN_CONFIDENCE where there are none.
    With them, the sure mistakes (reader.sure_mistakes at MIN_CONFIDENCE): where a label
    is not what the image shows, correcting it lowers the threshold again (on the
    benchmark's register cells, 5 such labels among 500 held out set it at 0.998285)."""
    readings = reader.read_many(list(decoded))
    right, confidence = judged(readings, texts)
    table = [r for r in risk_coverage(right, confidence) if r["threshold"] >= MIN_CONFIDENCE]
    row = accepted_at(table, ACCEPTED_RIGHT)
    return {
        "accuracy": round(float(right.mean()), 4),
        # The row's own confidence: rounded, it could pass the row's readings or reach 1.
        "threshold": row["threshold"] if row else 1.0 if table else MIN_CONFIDENCE,
        "accepted": round(row["coverage"], 4) if row else 0.0,
        # How many readings that share is, and how many of them are right: a share of a
        # few dozen cannot show one mistake in 100, and output.adapted says so.
        "accepted_readings": round(row["coverage"] * len(texts)) if row else 0,
        "accepted_right": round(row["accuracy"], 4) if row else None,
        "sure_mistakes": sure_mistakes(readings, texts, names, MIN_CONFIDENCE),
    }


def _labels_digest(data: labelled.Labelled) -> str:
    digest = hashlib.sha256()
    for path, text in zip(data.paths, data.texts, strict=True):
        digest.update(f"{path.name},{text}\n".encode())
    return digest.hexdigest()

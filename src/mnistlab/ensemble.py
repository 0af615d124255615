"""make_ensemble(config, data, run_dir): a run whose model averages other runs' probabilities.

The average is saved as one Keras model, so evaluate, predict, serve, compare and export
load an ensemble exactly as they load any run.
"""

from __future__ import annotations

import typing
from pathlib import Path

import keras

from mnistlab import runs
from mnistlab.config import EnsembleConfig
from mnistlab.data import IMAGE_SHAPE, Mnist
from mnistlab.predict import Predictor
from mnistlab.train import EVAL_BATCH_SIZE, prepare, run_record


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """One model: the mean of the members' class probabilities."""
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    outputs = []
    for i, member in enumerate(members, start=1):
        member.name = f"member_{i}"  # nested models need distinct names
        outputs.append(member(inputs))
    probabilities = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(inputs, probabilities, name="ensemble")


def make_ensemble(config: EnsembleConfig, data: Mnist, run_dir: Path) -> dict[str, typing.Any]:
    """Assemble, save and test the ensemble; returns its metrics.json."""
    members = [runs.require_finished(Path(m)) for m in config.members]
    predictors = [Predictor.from_run(m, config.model) for m in members]
    member_metrics = [runs.read_metrics(m) for m in members]
    run_dir = Path(run_dir)
    with runs.locked(run_dir, "written"):
        runs.start(run_dir, run_record(config, data))
        model = build_ensemble([p.model for p in predictors])
        with runs.atomic_path(run_dir / runs.FINAL_MODEL) as tmp:
            model.save(tmp)
        runs.write_json(run_dir / runs.HISTORY, [])

        x_test, y_test = prepare(data.x_test, data.y_test)
        model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
        test = model.evaluate(
            x_test, y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True
        )
        metrics = {
            "test_accuracy": float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            # Of the member model files used (final or best), on these test images.
            "member_test_accuracy": [
                float((p.predict_proba(data.x_test).argmax(1) == data.y_test).mean())
                for p in predictors
            ],
            # What the ensemble cost to train: all its members' epochs and seconds.
            "epochs_run": sum(m["epochs_run"] for m in member_metrics),
            "training_seconds": sum(m["training_seconds"] for m in member_metrics),
        }
        runs.finish(run_dir, metrics)
    return metrics

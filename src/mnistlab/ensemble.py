"""make_ensemble(config, data, run_dir): a run whose model averages other runs' probabilities.

The average is saved as one Keras model, so evaluate, predict, serve, compare and export
load an ensemble exactly as they load any run.
"""

from __future__ import annotations

from pathlib import Path

import keras

from mnistlab import runs
from mnistlab.config import IMAGE_SHAPE, EnsembleConfig
from mnistlab.data import Mnist
from mnistlab.metrics import classification_metrics, measure
from mnistlab.predictor import Predictor, average


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """One model: the mean of the members' class probabilities."""
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    outputs = []
    for i, member in enumerate(members, start=1):
        member.name = f"member_{i}"  # nested models need distinct names
        outputs.append(member(inputs))
    probabilities = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(inputs, probabilities, name="ensemble")


def make_ensemble(config: EnsembleConfig, data: Mnist, run_dir: Path) -> runs.Run:
    """Assemble, save and test the ensemble; returns its finished Run."""
    members = [runs.open_run(m) for m in config.members]
    predictors = [Predictor.from_run(m, config.model) for m in members]
    run_dir = Path(run_dir)
    with runs.locked(run_dir, "written"):
        record = runs.run_record(config, data.source, data.sha256, keras.backend.backend())
        runs.start(run_dir, record)
        model = build_ensemble([p.model for p in predictors])
        with runs.atomic_path(run_dir / runs.FINAL_MODEL) as tmp:
            model.save(tmp)
        runs.write_json(run_dir / runs.HISTORY, [])
        # Each member runs once; the saved model's Predictor averages them just so.
        measured = [measure(p, data.x_test, data.y_test) for p in predictors]
        test = classification_metrics(data.y_test, average([y_prob for _, y_prob in measured]))
        metrics = {
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            # Of the member model files used (final or best), on these test images.
            "member_test_accuracy": [m["accuracy"] for m, _ in measured],
            # What the ensemble cost to train: all its members' epochs and seconds.
            "epochs_run": sum(m.metrics["epochs_run"] for m in members),
            "training_seconds": sum(m.metrics["training_seconds"] for m in members),
        }
        runs.finish(run_dir, metrics)
    return runs.open_run(run_dir)

"""Evaluation of the real default model on the real test set."""

import io

import numpy as np
import pytest
from PIL import Image

from mnistlab import runs
from mnistlab.data import load_digits_set, scale
from mnistlab.predictor import FAST_PATH_MAX_BATCH, PREDICT_BATCH_SIZE, Predictor
from mnistlab.report.evaluation import evaluate_run

FIGURE_SIZES = {
    "learning_curves": (1000, 400),
    "confusion_matrix": (600, 550),
    "misclassified": (1100, 1240),
    "predictions": (1100, 1240),
    "per_class_accuracy": (800, 400),
}


@pytest.fixture(scope="module")
def evaluated(default_run):
    run_dir, _ = default_run
    return evaluate_run(run_dir, load_digits_set())


def test_evaluation_agrees_with_training_and_with_itself(default_run, evaluated):
    run_dir, _ = default_run
    assert evaluated.folder == run_dir
    assert runs.read_json(run_dir / runs.EVALUATION) == evaluated.record
    m = evaluated.metrics
    trained = runs.read_json(run_dir / runs.METRICS)
    # One metrics path: the numbers training wrote are the very numbers evaluate computes.
    assert (m["accuracy"], m["loss"]) == (trained["test_accuracy"], trained["test_loss"])
    matrix = np.array(m["confusion_matrix"])
    assert matrix.sum() == m["n"] == 10000
    assert np.trace(matrix) / matrix.sum() == pytest.approx(m["accuracy"], abs=1e-12)
    assert len(m["misclassified"]) == 10000 - np.trace(matrix)
    assert sum(s["support"] for s in m["per_class"].values()) == 10000


def test_predictor_batches_agree_with_model_predict(default_run, mnist):
    run_dir, _ = default_run
    predictor = Predictor.from_run(run_dir)
    x = scale(mnist.x_test)
    y_prob = predictor.predict_proba(mnist.x_test)
    same_batches = predictor.model.predict(x, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    np.testing.assert_array_equal(y_prob, same_batches)
    # Keras' default batch of 32 sums in another order: the same labels, floats within 1e-6.
    default_batches = predictor.model.predict(x, verbose=0)
    np.testing.assert_array_equal(y_prob.argmax(1), default_batches.argmax(1))
    np.testing.assert_allclose(y_prob, default_batches, atol=1e-6)


def test_the_numpy_fast_path_for_single_images_equals_model_predict(default_run, mnist):
    predictor = Predictor.from_run(default_run[0])
    assert predictor._dense is not None  # the reference MLP takes the fast path
    x = scale(mnist.x_test[:FAST_PATH_MAX_BATCH])
    expected = predictor.model.predict(x, verbose=0)
    singles = np.concatenate([predictor.predict_proba(image[None]) for image in x])
    np.testing.assert_allclose(singles, expected, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_proba(x), expected, atol=1e-6)


def test_figures_are_valid_pngs_of_the_expected_size(evaluated):
    out = evaluated.folder
    for name, size in FIGURE_SIZES.items():
        image = Image.open(io.BytesIO((out / runs.FIGURES / f"{name}.png").read_bytes()))
        assert (image.format, image.size) == ("PNG", size), name

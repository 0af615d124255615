import numpy as np
import pytest

from mnistlab.metrics import classification_metrics, format_report

# Four samples: two right (0, 1), a confident mistake and a hesitant one.
Y_TRUE = np.array([0, 1, 2, 2])
Y_PROB = np.full((4, 10), 0.01)
Y_PROB[0, 0] = Y_PROB[1, 1] = 0.91
Y_PROB[2, 7] = 0.91  # true 2, predicted 7, confidence 0.91
Y_PROB[3, 2], Y_PROB[3, 3] = 0.40, 0.52  # true 2, predicted 3 (rows sum to 1)


@pytest.fixture
def metrics():
    return classification_metrics(Y_TRUE, Y_PROB)


def test_accuracy_and_loss(metrics):
    assert metrics["n"] == 4
    assert metrics["accuracy"] == 0.5
    expected_loss = -np.mean(np.log([0.91, 0.91, 0.01, 0.40]))
    assert metrics["loss"] == pytest.approx(expected_loss)


def test_confusion_matrix_agrees_with_accuracy(metrics):
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == 4
    assert np.trace(matrix) / matrix.sum() == metrics["accuracy"]
    assert matrix[2, 7] == 1
    assert matrix[2, 3] == 1


def test_per_class_scores(metrics):
    assert metrics["per_class"]["0"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert metrics["per_class"]["2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert metrics["per_class"]["7"]["support"] == 0
    assert metrics["macro_avg"]["support"] == 4
    # weighted by support: classes 0 and 1 (recall 1) weigh 1 each, class 2 (recall 0) weighs 2
    assert metrics["weighted_avg"]["recall"] == pytest.approx(0.5)


def test_mistakes_are_listed_most_confident_first(metrics):
    assert metrics["misclassified"] == [
        {"index": 2, "true": 2, "predicted": 7, "confidence": pytest.approx(0.91)},
        {"index": 3, "true": 2, "predicted": 3, "confidence": pytest.approx(0.52)},
    ]


def test_text_report(metrics):
    lines = format_report(metrics).splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1].split() == ["0", "1.0000", "1.0000", "1.0000", "1"]
    assert lines[-1].split() == ["accuracy", "0.5000", "loss", f"{metrics['loss']:.4f}"]

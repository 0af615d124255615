"""The reader's line models: it keeps the reading that every line model finds
likeliest, not the first model's or the most self-assured one's."""

import numpy as np
import pytest

from mnistlab.predictor import Predictor
from mnistlab.read import documents, lines
from mnistlab.read.reader import Reader


@pytest.fixture(scope="module")
def numbers(mnist):
    return documents.number_strings(mnist.x_test, mnist.y_test, 40, seed=21, length=5)


@pytest.fixture(scope="module")
def predictor(default_run):
    return Predictor.from_run(default_run[0])


def sure_of_one_seven(images: list[np.ndarray]) -> list[np.ndarray]:
    """A line model gone wrong: every line is a single 7, and it is sure of it."""
    out = []
    for image in images:
        p = np.full((image.shape[1] // lines.STRIDE, 11), 1e-4)
        p[:, lines.BLANK] = 1.0
        p[len(p) // 2] = 1e-4
        p[len(p) // 2, 8] = 1.0
        out.append(p / p.sum(1, keepdims=True))
    return out


def test_the_shipped_models_are_all_used_and_agree_with_each_alone(predictor, numbers):
    shipped = lines.shipped()
    assert len(shipped) == len(lines.WEIGHTS) == 3
    images = [d.image for d in numbers]
    together = Reader(predictor).read_many(images)
    alone = [Reader(predictor, line_models=[m]).read_many(images) for m in shipped]
    for reading, *each in zip(together, *alone, strict=True):
        assert reading.text in {r.text for r in each}
        if len({r.text for r in each}) == 1:
            assert reading.text == each[0].text
    texts = [d.text for d in numbers]
    right = [sum(r.text == t for r, t in zip(rs, texts, strict=True)) for rs in (together, *alone)]
    assert right[0] >= 34, right  # measured 95% of 5-digit numbers on 2,000


def test_a_confident_wrong_model_does_not_win(predictor, numbers):
    plain = lines.LineModel.load()
    images = [d.image for d in numbers]
    alone = Reader(predictor, line_models=[plain]).read_many(images)
    with_wrong = Reader(predictor, line_models=[sure_of_one_seven, plain]).read_many(images)
    assert [r.text for r in with_wrong] == [r.text for r in alone]
    assert all(r.text != "7" for r in with_wrong)


class Refuses:
    """A classifier that must not be asked."""

    def predict_proba(self, x):
        raise AssertionError("the classifier was asked")


class Undecided:
    """A classifier with no opinion: every digit equally likely."""

    def predict_proba(self, x):
        return np.full((len(x), 10), 0.1, np.float32)


def test_without_the_classifier_the_line_models_alone_read_each_digit(numbers):
    images = [d.image for d in numbers[:12]]
    alone = Reader(Refuses(), classifier=False).read_many(images)
    undecided = Reader(Undecided()).read_many(images)
    for a, b in zip(alone, undecided, strict=True):
        assert a.text == b.text and [d.box for d in a.digits] == [d.box for d in b.digits]
        got, expected = [d.probability for d in a.digits], [d.probability for d in b.digits]
        assert got == pytest.approx(expected, rel=1e-5)
        assert a.confidence == pytest.approx(b.confidence, rel=1e-5)

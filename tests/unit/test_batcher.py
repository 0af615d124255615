"""The inference thread: merges what is queued, answers each caller its own rows."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mnistlab.serve.batcher import Batcher


class SlowModel:
    """Sums each image's pixels into every class; records the batch sizes it was called on."""

    def __init__(self):
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, x):
        self.calls.append(len(x))
        self.threads.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough for the other callers to queue up behind
        return np.repeat(x.reshape(len(x), -1).sum(axis=1, keepdims=True), 10, axis=1)


def test_concurrent_callers_are_merged_into_few_calls_and_get_their_own_rows():
    model = SlowModel()
    batcher = Batcher(model, max_batch=64)
    images = [np.full((1 + i % 3, 28, 28), i, np.float32) for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(batcher.predict_proba, images))
    batcher.close()
    for i, answer in enumerate(answers):
        assert answer.shape == (len(images[i]), 10)
        assert (answer == i * 784).all()
    assert sum(model.calls) == sum(len(x) for x in images)
    assert len(model.calls) < len(images)  # merged
    assert max(model.calls) <= 64
    assert model.threads == {"mnistlab-inference"}  # one thread ever enters the model


def test_max_batch_one_means_a_call_per_request():
    model = SlowModel()
    batcher = Batcher(model, max_batch=1)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(batcher.predict_proba, [np.zeros((1, 28, 28), np.float32)] * 8))
    batcher.close()
    assert model.calls == [1] * 8


def test_an_error_reaches_the_callers_and_the_thread_lives_on():
    def fails_on_negative(x):
        if (x < 0).any():
            raise ValueError("negative pixels")
        return np.zeros((len(x), 10), np.float32)

    batcher = Batcher(fails_on_negative, max_batch=8)
    with pytest.raises(ValueError, match="negative pixels"):
        batcher.predict_proba(-np.ones((1, 28, 28), np.float32))
    assert batcher.predict_proba(np.ones((2, 28, 28), np.float32)).shape == (2, 10)
    batcher.close()

"""Batcher: one inference thread that runs concurrent requests' images as one model call.

A CNN's compiled predict costs about the same for 16 images as for one, and Keras must
not be entered by two threads at once anyway; so request threads queue their images and
wait, while one thread takes everything queued (up to `max_batch` images) per call. It
never waits for a batch to fill: alone, a request is answered at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

_STOP = object()  # queued by close()


class Batcher:
    """Calls `predict` ((N, 28, 28) -> (N, 10)) from one thread, on merged requests."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int):
        self._predict, self.max_batch = predict, max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="mnistlab-inference", daemon=True)
        self._thread.start()

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) -> (N, 10), as `predict` gives; blocks the calling thread until ready."""
        answer: Future = Future()
        self._queue.put((images, answer))
        return answer.result()

    def close(self) -> None:
        """Answer what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _serve(self) -> None:
        pending = None
        while True:
            job = self._queue.get() if pending is None else pending
            pending = None
            if job is _STOP:
                return
            jobs, count = [job], len(job[0])
            while count < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP or count + len(job[0]) > self.max_batch:
                    pending = job  # the next call's first job (or the stop, after this call)
                    break
                jobs.append(job)
                count += len(job[0])
            self._run(jobs)

    def _run(self, jobs: list[tuple[np.ndarray, Future]]) -> None:
        try:
            probabilities = self._predict(np.concatenate([images for images, _ in jobs]))
        except Exception as e:  # every waiting request gets the error, the thread lives on
            for _, answer in jobs:
                answer.set_exception(e)
            return
        ends = np.cumsum([len(images) for images, _ in jobs])
        for (_, answer), part in zip(jobs, np.split(probabilities, ends[:-1]), strict=True):
            answer.set_result(part)

"""Reader: a written number's image -> its digits, read with a trained classifier.

Recognition-based segmentation: segment.py proposes pieces and the runs of pieces that
may be one digit; every candidate of every image goes to the classifier and to the
verifier (is it one whole digit?) in one batch each; dynamic programming then picks the
split that scores best (with `length`, the best split into exactly that many digits).
The reading's confidence is the product, over its digits, of the class probability and
the verifier's: the chance the whole string is right, were both calibrated and their
errors independent (they are not quite: see the README's risk-coverage figures).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistlab import images, runs, segment
from mnistlab.config import MAX_DIGITS, ConfigError, ReadConfig
from mnistlab.errors import UserError
from mnistlab.predictor import Predictor
from mnistlab.verifier import Verifier, candidate_inputs

# Files read per model call by read_paths: their candidates go in one batch.
FILES_PER_BATCH = 32
# Probabilities are floored here before taking logs: a candidate the model rejects
# outright still loses to any sure one, but keeps the arithmetic finite.
FLOOR = 1e-6
# A digit's shape as written: log(width / height) of each class's ink box, mean and
# spread over MNIST's training digits (pixels over 64). A candidate far from its class's
# shape is two digits run together, or part of one.
ASPECT = {0: (-0.11, 0.20), 1: (-0.93, 0.46), 2: (-0.07, 0.22), 3: (-0.24, 0.21),
          4: (-0.24, 0.21), 5: (-0.07, 0.26), 6: (-0.33, 0.22), 7: (-0.26, 0.22),
          8: (-0.28, 0.22), 9: (-0.40, 0.21)}  # fmt: skip
# Log-probability cost of reading two separate blobs of ink as one digit: a broken
# digit's parts overlap and are one blob already, mostly.
JOIN_COST = 1.5
# A digit is about as tall as the text: height / text height, spread.
HEIGHT_SPREAD = 0.2
# Log-probability cost of cutting through one stroke: touching digits share one stroke
# where they meet, while a cut through a 0 or an 8 crosses two or three.
CUT_COST = 0.5


@dataclass(frozen=True)
class Digit:
    digit: int
    probability: float
    box: list[int]  # x, y, w, h in the image's pixels


@dataclass(frozen=True)
class Reading:
    """What an image says: its digits left to right, and how sure the reader is."""

    text: str
    confidence: float
    unsure: bool
    digits: list[Digit]

    def line(self) -> str:
        said = "unsure" if self.unsure else self.text
        return f"{said}  (confidence {self.confidence:.3f})" + (
            f"  best guess {self.text}" if self.unsure else ""
        )

    def as_record(self) -> dict[str, typing.Any]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 6),
            "unsure": self.unsure,
            "digits": [
                {"digit": d.digit, "probability": round(d.probability, 6), "box": d.box}
                for d in self.digits
            ],
        }


class Reader:
    """Reads numbers with a Predictor (or anything with its predict_proba, such as the
    server's Batcher); `read_many` sends all its images' candidates in one batch."""

    def __init__(
        self, predictor: Predictor, min_confidence: float = 0.0, verifier: Verifier | None = None
    ):
        self.predictor = predictor
        self.min_confidence = min_confidence
        self.verifier = verifier or Verifier.load()

    @classmethod
    def from_run(
        cls, run: runs.Run | Path, which: str = "final", min_confidence: float = 0.0
    ) -> Reader:
        return cls(Predictor.from_run(run, which), min_confidence)

    def read(
        self, image: np.ndarray | bytes | str | os.PathLike, length: int | None = None
    ) -> Reading:
        """One image (a file, its bytes, or grayscale (H, W) in [0, 255], dark or light
        ink) -> its Reading. Raises ImageError when there is nothing to read."""
        gray = image if isinstance(image, np.ndarray) else images.read_image(image)
        (result,) = self.read_many([gray], length)
        if isinstance(result, UserError):
            raise result
        return result

    def read_many(
        self, grays: list[np.ndarray], length: int | None = None
    ) -> list[Reading | UserError]:
        """Grayscale images -> a Reading each, or the error that kept it from one."""
        fields: list[segment.Field | UserError] = []
        crops, spans, boxes, shapes = [], [], [], []
        for gray in grays:
            try:
                field = segment.find_field(np.asarray(gray, np.float32))
                if length is not None and len(field.pieces) < length:
                    raise segment.SegmentError(
                        f"found at most {len(field.pieces)} digits, not the {length} asked for"
                    )
            except images.ImageError as e:
                fields.append(e)
                spans.append([])
                continue
            runs_, field_crops, field_shapes, field_boxes = candidate_inputs(field)
            fields.append(field)
            spans.append(runs_)
            crops.append(field_crops)
            shapes.append(field_shapes)
            boxes += field_boxes
        if crops:
            crops_ = np.concatenate(crops)
            probabilities = self.predictor.predict_proba(crops_)
            whole = self.verifier(crops_, np.concatenate(shapes))
        else:
            probabilities, whole = np.zeros((0, 10)), np.zeros(0)
        results: list[Reading | UserError] = []
        start = 0
        for field, runs_ in zip(fields, spans, strict=True):
            if isinstance(field, UserError):
                results.append(field)
                continue
            p = probabilities[start : start + len(runs_)]
            v = whole[start : start + len(runs_)]
            box = boxes[start : start + len(runs_)]
            start += len(runs_)
            try:
                results.append(self._best(field, runs_, p, v, box, length))
            except segment.SegmentError as e:
                results.append(e)
        return results

    def _best(
        self,
        field: segment.Field,
        runs_,
        p: np.ndarray,
        whole: np.ndarray,
        boxes: list[list[int]],
        length: int | None,
    ) -> Reading:
        """The split of the pieces into digits that scores best: the sum over its digits
        of the log probabilities of the class and of being one whole digit (verifier),
        the geometry's log-prior, less the cost of each stroke cut."""
        n = len(field.pieces)
        # score[k][j]: best score reading pieces [0, j) as k digits; with the length free,
        # one row serves every count (k stays 0).
        counts = length + 1 if length is not None else 1
        step = 1 if length is not None else 0
        score = np.full((counts, n + 1), -np.inf)
        back: dict[tuple[int, int], tuple[int, int]] = {}
        score[0][0] = 0.0
        logp = np.log(np.maximum(p.max(axis=1), FLOOR)) + np.log(np.maximum(whole, FLOOR))
        logp += _priors(field, runs_, p, boxes)
        logp -= CUT_COST * np.array([field.pieces[i].crossed for i, _ in runs_])
        # Candidates in order of their last piece: every path to a piece is final before
        # any candidate starts there.
        for c in sorted(range(len(runs_)), key=lambda c: runs_[c][1]):
            i, j = runs_[c]
            for k in range(step, counts):
                total = score[k - step][i] + logp[c]
                if total > score[k][j]:
                    score[k][j], back[k, j] = total, (i, c)
        k = counts - 1
        if not np.isfinite(score[k][n]):
            raise segment.SegmentError(f"cannot split the ink into {length} digits")
        chosen = []
        j = n
        while j > 0:
            i, c = back[k, j]
            chosen.append(c)
            j, k = i, k - step
        chosen.reverse()
        if len(chosen) > MAX_DIGITS:
            raise segment.SegmentError(f"more than {MAX_DIGITS} digits: not a number")
        digits = [Digit(int(p[c].argmax()), float(p[c].max()), boxes[c]) for c in chosen]
        confidence = float(np.prod([d.probability for d in digits]) * np.prod(whole[chosen]))
        return Reading(
            "".join(str(d.digit) for d in digits),
            confidence,
            confidence < self.min_confidence,
            digits,
        )


def _priors(field: segment.Field, runs_, p: np.ndarray, boxes: list[list[int]]) -> np.ndarray:
    """Log-prior of each candidate's geometry: much wider than its class's shape (two
    digits run together), shorter than the text (part of one), or joining blobs."""
    logp = np.zeros(len(boxes))
    for c, (_, _, w, h) in enumerate(boxes):
        mean, spread = ASPECT[int(p[c].argmax())]
        off = max(0.0, (np.log(w / h) - mean) / spread - 1)  # wider by over a spread
        logp[c] -= 0.5 * off**2
        logp[c] -= 0.5 * (max(0.0, 1 - h / field.height) / HEIGHT_SPREAD) ** 2
        first, last = field.pieces[runs_[c][0]], field.pieces[runs_[c][1] - 1]
        logp[c] -= JOIN_COST * (last.blob - first.blob)
    return logp


def read_paths(
    config: ReadConfig, paths: list[str | os.PathLike]
) -> Iterator[tuple[Path, Reading | UserError]]:
    """Each image file (folders: every image in them) -> its Reading or its error, in
    order, FILES_PER_BATCH files to a model call."""
    files = images.image_files(paths)
    if not files:
        raise ConfigError("no image files found in the folders given")
    reader = Reader.from_run(Path(config.run), config.model, config.min_confidence)
    for start in range(0, len(files), FILES_PER_BATCH):
        chunk = files[start : start + FILES_PER_BATCH]
        grays: list[np.ndarray] = []
        errors: dict[Path, UserError] = {}
        for path in chunk:
            try:
                grays.append(images.read_image(path))
            except (images.ImageError, OSError) as e:
                unreadable = images.ImageError(f"unreadable: {e}")
                errors[path] = e if isinstance(e, UserError) else unreadable
        readings = iter(reader.read_many(grays, config.length))
        for path in chunk:
            yield path, errors.get(path) or next(readings)

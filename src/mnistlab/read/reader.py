"""Reader: a written number's image -> its digits, read with a trained classifier.

Each line model (lines.py) reads the whole line: how many digits, where each lies, and
what each looks like to it. segment.py shares the ink out among those digits, and the
run's classifier reads each digit's crop (every crop of every image in one batch). A
digit's probabilities are the line model's times the classifier's, renormalised. A digit
cut out of touching ink holds parts of its neighbours, so there the line model alone
decides (measured: trusting those crops lost more numbers than it saved).

A reading's confidence is the product of its digits' probabilities times the line
models' probability of the whole string (lines.string_probability; the geometric mean
over the models). The digits alone miss a digit too many or too few and a line the model
is torn over: on 2,000 five-digit numbers, accepting readings at 99.5% right kept 36% of
them on the digits' product and 73% with one line model on this one. Of the readings the
line models lead to, the most confident is kept: the models' errors differ (before
either saw numbers drawn as on paper, the first two read 95.2% of 500 five-digit numbers
of the string benchmark, one alone 94.3%).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mnistlab import bulk, images, runs
from mnistlab.config import MAX_DIGITS, ReadConfig
from mnistlab.errors import UserError
from mnistlab.metrics import coverage_at
from mnistlab.predictor import Predictor
from mnistlab.read import lines, segment
from mnistlab.read.segment import Mark

# Decimal places of the probabilities a Reading reports.
PLACES = 6
# What `read` accepts by default: readings at least this sure. Real paper makes the
# reader surer than it is right: on both dev sets, with a `deep-mlp` and a `cnn` run and
# the label errors of benchmarks/label_errors.csv corrected, what is accepted is 99% right
# above 0.9855 at the lowest (`cnn`, cheques; at 0.98, 98.9%). A margin above that is for
# writers neither set holds (docs/commands/read.md). An adapted reader has its own
# threshold, set on the labels it held out.
MIN_CONFIDENCE = 0.99
# Files read per model call by Reader.read_files: their digits go in one batch.
FILES_PER_BATCH = 32

# A digit as segmented: its crop, box, wholeness and the line model's probabilities.
_Seen = tuple[np.ndarray, list[int], bool, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Digit:
    digit: int
    probability: float
    box: list[int]  # x, y, w, h in the image's pixels


@dataclasses.dataclass(frozen=True)
class Reading:
    """What an image says: its digits left to right, and how sure the reader is."""

    text: str
    confidence: float
    unsure: bool
    digits: list[Digit]
    marks: list[Mark] = dataclasses.field(default_factory=list)

    @property
    def written(self) -> str:
        """The digits with the marks found beside them in their places: "19.133.-"."""
        centres = [d.box[0] + d.box[2] / 2 for d in self.digits]
        after = [sum(c < m.box[0] + m.box[2] / 2 for c in centres) for m in self.marks]
        return "".join(
            "".join(m.mark for m, k in zip(self.marks, after, strict=True) if k == place)
            + (str(self.digits[place].digit) if place < len(self.digits) else "")
            for place in range(len(self.digits) + 1)
        )

    def line(self) -> str:
        said = "unsure" if self.unsure else self.text
        return f"{said}  (confidence {self.confidence:.3f})" + (
            f"  best guess {self.text}" if self.unsure else ""
        )

    def as_record(self) -> dict[str, typing.Any]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, PLACES),
            "unsure": self.unsure,
            "digits": [
                {"digit": d.digit, "probability": round(d.probability, PLACES), "box": d.box}
                for d in self.digits
            ],
            "written": self.written,
            "marks": [{"mark": m.mark, "box": m.box} for m in self.marks],
        }


class Reader:
    """Reads numbers with a Predictor (or anything with its predict_proba, such as the
    server's Batcher); `read_many` sends all its images' digits in one batch."""

    def __init__(
        self,
        predictor: Predictor,
        min_confidence: float = 0.0,
        line_models: list[lines.LineModel] | None = None,
        classifier: bool = True,
    ):
        self.predictor = predictor
        self.min_confidence = min_confidence
        self.line_models = line_models or lines.shipped()
        # Whether the classifier reads each whole digit's crop beside the line models (an
        # adapted reader's line models may read the user's writing better alone).
        self.classifier = classifier

    @classmethod
    def from_run(
        cls, run: runs.Run | Path, which: str = "final", min_confidence: float | None = None
    ) -> Reader:
        """The run's reader: its classifier, and the line models, calibrated threshold and
        choice of classifier that `adapt` wrote into it (the package's line models where
        it wrote none). `min_confidence` None: that threshold."""
        fitted = reader_of(run.path if isinstance(run, runs.Run) else run)
        return cls.fitted(Predictor.from_run(run, which), fitted, min_confidence)

    @classmethod
    def fitted(
        cls, predictor: Predictor, fitted: Fitted, min_confidence: float | None = None
    ) -> Reader:
        """A reader of this classifier (a Predictor or the server's Batcher) as a run
        folder's reader_of describes it; `min_confidence` None: its threshold."""
        chosen = fitted.min_confidence if min_confidence is None else min_confidence
        return cls(predictor, chosen, fitted.line_models, fitted.classifier)

    def read(
        self,
        image: np.ndarray | images.Decoded | bytes | str | os.PathLike,
        length: int | None = None,
    ) -> Reading:
        """One image (a file, its bytes, a decoded one, or grayscale (H, W) in [0, 255],
        dark or light ink) -> its Reading. Raises ImageError when there is nothing to read."""
        if not isinstance(image, (np.ndarray, images.Decoded)):
            image = images.decode(image)
        (result,) = self.read_many([image], length)
        if isinstance(result, UserError):
            raise result
        return result

    def read_many(
        self, grays: list[np.ndarray | images.Decoded], length: int | None = None
    ) -> list[Reading | UserError]:
        """Grayscale images -> a Reading each, or the error that kept it from one. The boxes
        of a decoded image are in its file's pixels, not the reduced copy read."""
        readings = self._read_grays(
            [g.gray if isinstance(g, images.Decoded) else g for g in grays], length
        )
        return [
            _in_file_pixels(r, g) if isinstance(g, images.Decoded) and g.factor > 1 else r
            for r, g in zip(readings, grays, strict=True)
        ]

    def read_files(
        self, paths: list[Path], length: int | None = None
    ) -> Iterator[tuple[Path, Reading | UserError]]:
        """Each image file -> its Reading or the error that kept it from one, in order,
        FILES_PER_BATCH files to a model call."""
        for start in range(0, len(paths), FILES_PER_BATCH):
            chunk = paths[start : start + FILES_PER_BATCH]
            decoded: list[np.ndarray | images.Decoded] = []
            errors: dict[Path, UserError] = {}
            for path in chunk:
                try:
                    decoded.append(images.decode(path))
                except images.ImageError as e:
                    errors[path] = e
            readings = iter(self.read_many(decoded, length))
            for path in chunk:
                yield path, errors.get(path) or next(readings)

    def _read_grays(self, grays: list[np.ndarray], length: int | None) -> list[Reading | UserError]:
        found: list[tuple[segment.Field, lines.Line] | UserError] = []
        for gray in grays:
            try:
                field = segment.find_field(np.asarray(gray, np.float32))
                found.append((field, lines.line_image(field)))
            except images.ImageError as e:
                found.append(e)
        lined = [f[1].image for f in found if not isinstance(f, UserError)]
        by_model = zip(*(model(lined) for model in self.line_models), strict=True)
        # Per image: its error, or its field, every line model's posteriors and, per line
        # model, the digits it found (crops, boxes, wholeness, its probabilities) or why none.
        split: list[
            tuple[segment.Field, list[np.ndarray], list[list[_Seen] | UserError]] | UserError
        ] = []
        for item in found:
            if isinstance(item, UserError):
                split.append(item)
                continue
            field, line = item
            posteriors = list(next(by_model))
            found_digits: list[list[_Seen] | UserError] = []
            for p in posteriors:
                try:
                    found_digits.append(_digits(field, line, p, length))
                except segment.SegmentError as e:
                    found_digits.append(e)
            split.append((field, posteriors, found_digits))
        crops = (
            [
                crop
                for s in split
                if not isinstance(s, UserError)
                for digits in s[2]
                if not isinstance(digits, UserError)
                for crop, *_ in digits
            ]
            if self.classifier
            else []
        )
        classified = iter(self.predictor.predict_proba(np.stack(crops)) if crops else ())
        out: list[Reading | UserError] = []
        for s in split:
            if isinstance(s, UserError):
                out.append(s)
                continue
            field, posteriors, found_digits = s
            # Without the classifier, no crop is classified: None for each digit.
            readings = [
                self._reading(
                    posteriors,
                    d,
                    [next(classified) if self.classifier else None for _ in d],
                    field.marks,
                )
                for d in found_digits
                if not isinstance(d, UserError)
            ]
            out.append(max(readings, key=lambda r: r.confidence) if readings else found_digits[0])
        return out

    def _reading(
        self,
        posteriors: list[np.ndarray],
        digits: list[_Seen],
        classified: list[np.ndarray | None],
        marks: list[Mark],
    ) -> Reading:
        """The digits one line model found, each read by it and the classifier, and
        scored on every line model's probability of the string."""
        read = []
        for (_, box, whole, seen), by_class in zip(digits, classified, strict=True):
            q = seen * by_class if whole and by_class is not None else seen
            q = q / q.sum()
            read.append(Digit(int(q.argmax()), float(q.max()), box))
        text = "".join(str(d.digit) for d in read)
        line = np.prod([lines.string_probability(p, text) for p in posteriors])
        confidence = float(np.prod([d.probability for d in read]) * line ** (1 / len(posteriors)))
        unsure = is_unsure(confidence, self.min_confidence)
        return Reading(text, confidence, unsure, read, marks)


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What a run folder says of its reader, beside its classifier."""

    line_models: list[lines.LineModel]
    min_confidence: float
    classifier: bool  # whether the classifier reads the digits' crops too
    names: list[str]  # the line models' files, of lines.WEIGHTS


def reader_of(run_path: str | os.PathLike) -> Fitted:
    """The line models, the calibrated threshold and the choice of classifier of a run
    folder: those `adapt` wrote into its reader/ folder, or the package's."""
    folder = Path(run_path) / runs.READER
    if not (folder / runs.READER_RECORD).is_file():
        if (folder / runs.ADAPT_CONFIG).is_file():
            raise runs.RunError(
                f"{run_path}: unfinished adaptation; run mnistlab adapt again to finish it"
            )
        return Fitted(lines.shipped(), MIN_CONFIDENCE, True, list(lines.WEIGHTS))
    record = runs.read_json(folder / runs.READER_RECORD)
    if not isinstance(record, dict):
        record = {}
    threshold = record.get("min_confidence")
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise runs.RunError(f"{folder / runs.READER_RECORD}: damaged, no min_confidence in [0, 1]")
    classifier = record.get("classifier", True)  # readers adapted before the choice: True
    if not isinstance(classifier, bool):
        raise runs.RunError(f"{folder / runs.READER_RECORD}: damaged, classifier not true/false")
    # Readers adapted before the third line model shipped hold the first two.
    names = record.get("line_models", list(lines.WEIGHTS[:2]))
    if not (isinstance(names, list) and names and all(n in lines.WEIGHTS for n in names)):
        raise runs.RunError(
            f"{folder / runs.READER_RECORD}: damaged, line_models not of {lines.WEIGHTS}"
        )
    models = [lines.LineModel.from_file(folder / name) for name in names]
    return Fitted(models, float(threshold), classifier, names)


def is_unsure(confidence: float, min_confidence: float) -> bool:
    """Whether a reading is refused: below the threshold, at a threshold of 1 (no reading
    is certain: 1 refuses every one, as adapt's threshold where no share of the held-out
    readings is sure and right enough), or of a confidence that shows as 0 (a string the
    line models rule out, as a number forced to a wrong length is)."""
    return confidence < min_confidence or min_confidence >= 1.0 or round(confidence, PLACES) <= 0.0


def accepted_at(table: list[dict[str, float]], accuracy: float) -> dict[str, float] | None:
    """The row of a readings' risk-coverage table that accepts the most at least `accuracy`
    right, of those a threshold can accept (below 1: a threshold of 1 accepts none); None
    when no threshold gets there."""
    return coverage_at([row for row in table if row["threshold"] < 1.0], accuracy)


def _in_file_pixels(reading: Reading | UserError, decoded: images.Decoded) -> Reading | UserError:
    if isinstance(reading, UserError):
        return reading
    digits = [dataclasses.replace(d, box=decoded.box(d.box)) for d in reading.digits]
    marks = [dataclasses.replace(m, box=decoded.box(m.box)) for m in reading.marks]
    return dataclasses.replace(reading, digits=digits, marks=marks)


def _digits(
    field: segment.Field, line: lines.Line, p: np.ndarray, length: int | None
) -> list[_Seen]:
    """The line model's digits (frames) -> each one's 28x28 crop, box, wholeness and the
    line model's probabilities for it."""
    frames = lines.decode(p, length)
    if not frames:
        raise segment.SegmentError("no digits found")
    if len(frames) > MAX_DIGITS:
        raise segment.SegmentError(f"more than {MAX_DIGITS} digits: not a number")
    crops = field.split([line.column(f) for f in frames])
    return [
        (images.fit(ink), box, whole, lines.digit_probabilities(p, f))
        for f, (ink, box, whole) in zip(frames, crops, strict=True)
    ]


def read_paths(config: ReadConfig, files: list[Path]) -> Iterator[tuple[Path, Reading | UserError]]:
    """Each image file -> its Reading or its error, in order."""
    reader = Reader.from_run(Path(config.run), config.model, config.min_confidence)
    return reader.read_files(files, config.length)


def job(config: ReadConfig) -> bulk.Job:
    """`read`'s work on files, for worker processes (bulk) and Ray actors (cluster)."""
    return bulk.Job(
        load=functools.partial(
            Reader.from_run, Path(config.run), config.model, config.min_confidence
        ),
        answer=functools.partial(_read_chunk, length=config.length),
        describe=describe,
        chunk=FILES_PER_BATCH,
        columns={"text": "string", "confidence": "float64"},
    )


def describe(reading: Reading) -> bulk.Described:
    return reading.as_record(), reading.line(), reading.unsure


def _read_chunk(reader: Reader, paths: list, length: int | None) -> list:
    return [answer for _, answer in reader.read_files(paths, length)]


def judged(
    readings: list[Reading | UserError | None], texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each reading is its text, and its confidence (0 where none was read): what a
    risk-coverage table is made of."""
    right = [isinstance(r, Reading) and r.text == t for r, t in zip(readings, texts, strict=True)]
    confidence = [r.confidence if isinstance(r, Reading) else 0.0 for r in readings]
    return np.array(right, bool), np.array(confidence)


def sure_mistakes(
    readings: list[Reading | UserError | None], texts: list[str], names: list[str], threshold: float
) -> list[dict[str, typing.Any]]:
    """The readings accepted at `threshold` that are not their text, surest first. Each is
    the reader's mistake or the label's (an image labelled otherwise than it is written),
    for a person to check: a threshold set on labels has to stay above every one."""
    right, confidence = judged(readings, texts)
    return [
        {
            "file": names[k],
            "label": texts[k],
            "read": typing.cast(Reading, readings[k]).text,
            "confidence": round(float(confidence[k]), PLACES),
        }
        for k in np.argsort(-confidence, kind="stable")
        if not right[k] and not is_unsure(confidence[k], threshold)
    ]

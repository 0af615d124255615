"""Reading numbers written on paper: the ink found and cleaned (segment), the line models
that read a whole number (lines), the reader that joins them to a run's classifier
(reader), and synthetic documents made from MNIST digits (documents)."""

from mnistlab.read.reader import (
    FILES_PER_BATCH,
    MIN_CONFIDENCE,
    Digit,
    Reader,
    Reading,
    accepted_at,
    is_unsure,
    job,
    judged,
    read_paths,
    reader_of,
    sure_mistakes,
)
from mnistlab.read.segment import Mark, SegmentError

__all__ = [
    "FILES_PER_BATCH",
    "MIN_CONFIDENCE",
    "Digit",
    "Mark",
    "Reader",
    "Reading",
    "SegmentError",
    "accepted_at",
    "is_unsure",
    "job",
    "judged",
    "read_paths",
    "reader_of",
    "sure_mistakes",
]

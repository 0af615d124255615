"""A folder of images of written numbers with their texts in a labels file (CSV with the
columns `filename,label`), as a bank or an archive keeps its own documents: what
`evaluate --documents` measures on and `adapt` learns from."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mnistlab import images
from mnistlab.config import MAX_DIGITS
from mnistlab.errors import UserError

LABELS = "labels.csv"


@dataclass(frozen=True)
class Labelled:
    paths: list[Path]
    texts: list[str]
    left_out: int  # labels that are not a number of 1..MAX_DIGITS digits (with skip_other)


def load(folder: Path, labels: Path | None = None, skip_other: bool = False) -> Labelled:
    """The folder's images and their texts, in the labels file's order. A missing folder,
    file or column, an empty file, a label naming no image in the folder, or (unless
    `skip_other`) a label that is not all digits is a UserError naming it."""
    folder = Path(folder)
    labels = Path(labels) if labels else folder / LABELS
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    try:
        with open(labels, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{labels}: cannot read the labels file ({e})") from None
    if not rows:
        raise UserError(f"{labels}: no labels (expected a header 'filename,label' and rows)")
    if not {"filename", "label"} <= set(rows[0]):
        raise UserError(f"{labels}: the header must name the columns 'filename' and 'label'")
    paths, texts, left_out = [], [], 0
    for line, row in enumerate(rows, 2):
        name, text = (row["filename"] or "").strip(), (row["label"] or "").strip()
        if not (text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS):
            if skip_other and name:
                left_out += 1
                continue
            raise UserError(
                f"{labels}, line {line}: the label {text!r} is not a number of 1 to "
                f"{MAX_DIGITS} digits"
            )
        path = folder / name
        reason = images.skip_reason(path) if name and path.exists() else "no such file"
        if reason:
            raise UserError(f"{labels}, line {line}: {name!r}: {reason}")
        paths.append(path)
        texts.append(text)
    if not paths:
        raise UserError(f"{labels}: no label is a number")
    return Labelled(paths, texts, left_out)

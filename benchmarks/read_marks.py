"""Separators and end marks on real cheques: what `read` reports (Reading.marks, in its
`written`) against what is seen by eye on 24 cheques of cheques-dev (marks_seen.csv: the
digits and marks as written, "." for a full stop, a comma or a slash, "-" for a dash or a
tilde). A mark counts as found where one is reported after as many digits as it follows.

Usage: python benchmarks/read_marks.py RUN [--data FOLDER]
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import record

from mnistlab.read import Reader

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEEN = Path(__file__).with_name("marks_seen.csv")


def slots(written: str) -> Counter:
    """Each mark's place: how many digits come before it."""
    places, digits = Counter(), 0
    for c in written:
        if c.isdigit():
            digits += 1
        else:
            places[digits] += 1
    return places


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    with open(SEEN, newline="") as f:
        seen = [(args.data / r["set"] / r["filename"], r["seen"]) for r in csv.DictReader(f)]
    reader = Reader.from_run(args.run)
    readings = dict(reader.read_files([path for path, _ in seen]))
    rows, found, reported, marks = [], 0, 0, 0
    for path, written in seen:
        got = readings[path].written
        expected, placed = slots(written), slots(got)
        found += sum((expected & placed).values())
        reported += sum(placed.values())
        marks += sum(expected.values())
        rows.append([f"`{path.name}`", f"`{written}`", f"`{got}`"])
    summary = [[str(len(seen)), str(marks), f"{found} ({found / marks:.0%})",
                f"{reported - found} of {reported}"]]  # fmt: skip
    print(summary)
    record.write(
        "read_marks",
        [
            {
                "title": "Separators and end marks on 24 real cheques (cheques-dev), seen by eye",
                "columns": [
                    "cheques",
                    "marks seen",
                    "reported in their place",
                    "reported where none is seen",
                ],
                "rows": summary,
            },
            {"title": "Each cheque", "columns": ["file", "seen", "`written`"], "rows": rows},
        ],
    )


if __name__ == "__main__":
    main()

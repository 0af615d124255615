"""Numbers on real paper: cheque amounts (cheques-dev) and register cells
(register-cells-dev, the labels that are numbers), read zero-shot by a run's reader and,
with --adapt, by the reader adapted on one part and tested on the rest (fixed split).
Tesseract (one text line, digits only) reads the same images beside it where installed.
What the reader accepts by default is also measured against the labels with the label
errors in label_errors.csv corrected: images whose label is not what is written on them.

Usage: python benchmarks/read_real.py RUN [--data FOLDER] [--limit N] [--adapt]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import record

from mnistlab.config import AdaptConfig
from mnistlab.read import Reader, labelled
from mnistlab.read.adapt import adapt
from mnistlab.report import read_documents

SETS = {"cheques-dev": 400, "register-cells-dev": 2000}  # and how many adapt trains on
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {  # zero-shot exact, accepted by default at >= 99% right, adapted exact
    "cheques-dev": (0.85, 0.60, 0.95),
    "register-cells-dev": (0.70, 0.40, 0.95),
}
STRINGS_PER_SECOND = 50
# Labels of the dev sets that are not what the image shows, seen by eye: `set,filename,
# label,seen`.
LABEL_ERRORS = Path(__file__).with_name("label_errors.csv")
# Files enough for `read` to start every worker (2 chunks or more): what it takes to start
# them and load the model, timed.
FEW = 96


def subset(data: labelled.Labelled, keep: np.ndarray) -> labelled.Labelled:
    return labelled.Labelled(
        [data.paths[k] for k in keep], [data.texts[k] for k in keep], data.left_out
    )


def corrected(data: labelled.Labelled, name: str) -> tuple[labelled.Labelled, int]:
    """The set with its LABEL_ERRORS corrected (those whose label is still the wrong
    one), and how many were."""
    with open(LABEL_ERRORS, newline="") as f:
        seen = {
            (r["filename"], r["label"]): r["seen"] for r in csv.DictReader(f) if r["set"] == name
        }
    texts = [seen.get((p.name, t), t) for p, t in zip(data.paths, data.texts, strict=True)]
    fixed = sum(a != b for a, b in zip(texts, data.texts, strict=True))
    return labelled.Labelled(data.paths, texts, data.left_out), fixed


def tesseract(data: labelled.Labelled) -> dict | None:
    """Tesseract 5 as a user would try it: one text line, digits only (a process per
    image, as many at once as there are cores)."""
    if not shutil.which("tesseract"):
        return None

    def said(path: Path) -> str:
        out = subprocess.run(
            ["tesseract", str(path), "stdout", "--psm", "7", "-c",
             "tessedit_char_whitelist=0123456789"],
            capture_output=True, text=True, check=False,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        ).stdout  # fmt: skip
        return "".join(c for c in out if c.isdigit())

    start = time.perf_counter()
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        texts = list(pool.map(said, data.paths))
    right = sum(a == b for a, b in zip(texts, data.texts, strict=True))
    seconds = time.perf_counter() - start
    return {"accuracy": right / len(data.texts), "per_second": len(data.texts) / seconds}


def through_read(run: Path, data: labelled.Labelled) -> dict:
    """`mnistlab read RUN FILES --out` with its default --jobs (every core): files per
    second over the whole command, and once started (the wall time of a run on the first
    FEW files, the workers' start and model loading, taken off a run on all of them;
    after a first run, so that neither compiles what the other finds compiled)."""

    def timed(paths: list[Path]) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "mnistlab", "read", str(run), *map(str, paths),
                 "--out", str(Path(tmp) / "read.jsonl")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            seconds = time.perf_counter() - start
        summary = done.stdout.strip().splitlines()[-1]
        return seconds, float(summary.rsplit("; ", 1)[1].split()[0])

    some = min(FEW, len(data.paths) // 2)
    timed(data.paths[:some])  # fills the compilation cache: both timed runs find it full
    few, _ = timed(data.paths[:some])
    seconds, whole = timed(data.paths)
    return {"whole": whole, "started": (len(data.paths) - some) / max(seconds - few, 1e-9)}


def adapted(
    run: Path, folder: Path, data: labelled.Labelled, train: int, epochs: int
) -> tuple[dict, dict]:
    """Adapt on the first `train` of a seeded permutation; read the rest."""
    order = np.random.default_rng(0).permutation(len(data.texts))
    with tempfile.TemporaryDirectory() as tmp:
        labels = Path(tmp) / "train.csv"
        with open(labels, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["filename", "label"])
            writer.writerows([data.paths[k].name, data.texts[k]] for k in order[:train])
        config = AdaptConfig(run=str(run), folder=str(folder), labels=str(labels), epochs=epochs)
        made = adapt(config, Path(tmp) / "reader")
        return made.record, read_documents(Reader.from_run(made.path), subset(data, order[train:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, help="read this many of each set (seeded)")
    parser.add_argument("--adapt", action="store_true")
    parser.add_argument("--epochs", type=int, default=AdaptConfig.epochs)
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the figures (default: benchmarks/results/read_real.json)",
    )
    args = parser.parse_args()
    rows, targets, adapt_rows = [], [], []
    for name, train in SETS.items():
        folder = args.data / name
        if not folder.is_dir():
            sys.exit(f"{folder}: not there (see shared/data/SOURCES.md)")
        data = labelled.load(folder, skip_other=True)
        if args.limit:
            data = subset(data, np.random.default_rng(0).permutation(len(data.texts))[: args.limit])
        reader = Reader.from_run(args.run)
        zero = read_documents(reader, data)
        fixed_data, fixed = corrected(data, name)
        default = _accepted(zero["default"])
        if fixed:
            right = read_documents(reader, fixed_data)["default"]["right"]
            errors = f"{fixed} label error" + "s" * (fixed > 1)
            default += f"; {_pct(right)} with the {errors} corrected"
        per_second = through_read(args.run, data)
        tess = tesseract(data)
        best = zero["at_99"]
        rows.append([
            f"`{name}`", f"{len(data.texts):,}", f"**{zero['accuracy']:.1%}**",
            default,
            f"{best['coverage']:.1%} (at {best['threshold']:.6g})" if best else "0%",
            f"{zero['no_number']}", f"{zero['strings_per_second']:.0f}",
            f"{per_second['started']:.0f} ({per_second['whole']:.0f} with start-up)",
            f"{tess['accuracy']:.1%} ({tess['per_second']:.0f}/s)" if tess else "not installed",
        ])  # fmt: skip
        print(name, zero["accuracy"], zero["default"], best, tess, flush=True)
        exact, accepted, adapted_exact = TARGETS[name]
        default_ok = (zero["default"]["right"] or 0) >= 0.99
        targets += [
            _target(f"{name}: zero-shot exact >= {exact:.0%}", zero["accuracy"], exact),
            {
                "target": f"{name}: accepted by default >= {accepted:.0%}, at >= 99% right",
                "measured": f"{zero['default']['accepted']:.1%} accepted, "
                f"{_pct(zero['default']['right'])} right",
                "met": default_ok and zero["default"]["accepted"] >= accepted,
            },
            _target(f"{name}: strings/s through read >= {STRINGS_PER_SECOND}",
                    per_second["started"], STRINGS_PER_SECOND, "{:.0f}"),
        ]  # fmt: skip
        if args.adapt:
            made, after = adapted(
                args.run, folder, data, min(train, len(data.texts) * 3 // 4), args.epochs
            )
            adapt_rows.append([
                f"`{name}`",
                f"{made['trained_on']} (+{made['held_out']} held out for the threshold)",
                f"{len(data.texts) - made['trained_on'] - made['held_out']:,}",
                f"{made['seconds'] / 60:.1f}", f"**{after['accuracy']:.1%}**",
                _accepted(after["default"]),
            ])  # fmt: skip
            print(name, "adapted", made["after"], after["accuracy"], after["default"], flush=True)
            targets.append(
                _target(
                    f"{name}: adapted exact >= {adapted_exact:.0%}",
                    after["accuracy"],
                    adapted_exact,
                )
            )
    tables = [{
        "title": "Zero-shot: the reader that ships with the package and the run's classifier",
        "columns": ["set", "images", "read right", "accepted by default",
                    "accepted where 99% right", "no number found", "images/s in one process",
                    "images/s through `read` (every core, once started)",
                    "Tesseract 5 (psm 7, digits)"],
        "rows": rows,
    }]  # fmt: skip
    if adapt_rows:
        tables.append({
            "title": "Adapted: `mnistlab adapt` on one part, read on the rest (fixed split)",
            "columns": ["set", "labelled images adapt took", "images read", "minutes to adapt",
                        "read right", "accepted by the adapted threshold"],
            "rows": adapt_rows,
        })  # fmt: skip
    record.write("read_real", tables, targets, path=args.json)


def _target(what: str, measured: float, bar: float, form: str = "{:.1%}") -> dict:
    return {"target": what, "measured": form.format(measured), "met": measured >= bar}


def _accepted(default: dict) -> str:
    return f"{default['accepted']:.1%} ({_pct(default['right'])} right)"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


if __name__ == "__main__":
    main()

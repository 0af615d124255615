"""What the commands print: one line per file answered, and text tables."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

from mnistlab import bulk, progress, runs
from mnistlab.config import NUM_CLASSES
from mnistlab.data import class_counts
from mnistlab.errors import UserError

# How many of the readings accepted and not as labelled (adapt's held-out images,
# evaluate --documents') are printed; the record holds them all.
SURE_MISTAKES_SHOWN = 5
# Accepted readings that can show 99% of them right: one mistake among them is 1 in 100.
SHOWS_99 = 100


def each_file(args: argparse.Namespace, job, done: str, sep: str) -> int:
    """Answer every image file named (folders: the images in them) with the Job: a line
    each, above a progress bar on a terminal, or with --out a record each in that results
    file, where a run started again skips the files already answered; a note for each
    file skipped; one closing count. Exit status 1 if a file failed ('unsure' is an
    answer)."""
    from mnistlab.images import image_files, skip_reason

    files, skipped = image_files(args.images)
    for path in skipped:
        print(f"skipped {shown(path)}: {skip_reason(path)}", file=sys.stderr, flush=True)
    results = bulk.Results(args.out) if args.out else None
    named = [(path, shown(path)) for path in files]
    todo = [(path, name) for path, name in named if results is None or name not in results.done]
    counts = dict.fromkeys((done, "unsure", "failed"), 0)
    written: list[dict] = []  # records for the results file, written a chunk at a time
    start = time.perf_counter()
    stream = contextlib.closing(_described(job, [path for path, _ in todo], args))
    try:
        with stream as answers, progress.bar(len(todo), "file") as bar:
            for (_, name), answer in zip(todo, answers, strict=True):
                if isinstance(answer, UserError):
                    counts["failed"] += 1
                    record, line = {"error": shown(answer)}, f"error: {shown(answer)}"
                else:
                    record, line, unsure = answer
                    counts["unsure" if unsure else done] += 1
                whole = {"file": name, **record}
                if results is not None:
                    written.append(whole)
                    if len(written) >= job.chunk:
                        results.write(written)
                        written = []
                else:
                    bar.write(json.dumps(whole) if args.json else f"{name}{sep}{line}")
                    sys.stdout.flush()  # a reader of the pipe sees each answer when it is made
                bar.update()
    finally:  # what was answered is kept, even on Ctrl-C
        if results is not None:
            results.write(written)
            results.close()
    seconds = time.perf_counter() - start
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    summary += f", {len(skipped)} skipped" if skipped else ""
    before = len(files) - len(todo)
    summary += f", {before} already in {shown(args.out)}" if before else ""
    summary += f"; {len(todo) / seconds:.1f} files/s" if todo else ""
    files_ = f"{len(files)} file{'s' if len(files) != 1 else ''}"
    print(f"{files_}: {summary}", file=sys.stderr if args.json and not args.out else sys.stdout)
    return 1 if counts["failed"] else 0


def _described(job, files: list, args: argparse.Namespace):
    """The answers' stream: a Ray cluster's with --ray, else this machine's processes."""
    if args.ray is not None:
        from mnistlab import cluster

        return cluster.described(job, files, args.ray or None, args.jobs)
    return bulk.described(job, files, args.jobs or bulk.usable_cores())


def shown(thing: object) -> str:
    """Text that any UTF-8 reader takes: bytes of a file name that are not UTF-8 (which
    Python holds as lone surrogates) written as visible escapes, as `ls -b` does."""
    text = str(thing)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def print_table(header: list[str], rows: list[list]) -> None:
    """A text table on standard output: columns padded to their widest cell, numbers
    right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(header))]
    for row in cells:
        padded = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        ]
        print("  ".join(padded).rstrip())


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def tune_summary(done, config, top: int) -> None:
    """The study's trials counted, its `top` best, the best, and the tuned run's comparison."""
    from mnistlab import tune

    trials = done.record["trials"]
    completed = sum(t["state"] == "COMPLETE" for t in trials)
    print(f"study {config.study}: {len(trials)} trials, {completed} completed")
    print_table(
        ["trial", "val_accuracy", "seconds", "params"],
        [[t["number"], f"{t['value']:.4f}", f"{t['seconds'] or 0:.0f}",
          tune.format_params(t["params"])] for t in tune.top_trials(done.record, top)],
    )  # fmt: skip
    best = tune.best_trial(done.study)
    print(f"best trial {best.number}: val_accuracy={best.value:.4f} "
          f"{tune.format_params(best.params)}")  # fmt: skip
    print(f"study: {done.folder / tune.STUDY_JSON}")
    if done.tuned is not None:
        print_table(list(done.comparison[0]), [list(r.values()) for r in done.comparison])
        print(f"tuned run: {done.tuned.path}")


def evaluation_summary(evaluation, strict: float) -> None:
    """The metrics' report; the string benchmark's figures, with the threshold at which
    `strict` of the accepted readings are right; where the report is."""
    from mnistlab.metrics import format_report
    from mnistlab.read import accepted_at

    print(format_report(evaluation.metrics))
    strings = evaluation.record.get("strings")
    if strings:
        sure = accepted_at(strings["risk_coverage"], strict)
        accepted = (
            f"at --min-confidence {sure['threshold']:.6g}, {sure['coverage']:.1%} accepted, "
            f"{sure['accuracy']:.2%} of them right"
            if sure
            else f"no threshold makes the accepted {strict:.1%} right"
        )
        print(
            f"strings: {strings['string_accuracy']:.4f} string accuracy "
            f"(touching pair {_share(strings['touching'])}, "
            f"none {_share(strings['not_touching'])}), "
            f"digit accuracy {strings['digit_accuracy']:.4f}, "
            f"{strings['strings_per_second']:.0f} strings/s; {accepted}"
        )
    print(f"report: {evaluation.folder / runs.REPORT}")


def documents_summary(record: dict, path) -> None:
    """evaluate --documents: how many read right, what the default threshold accepts, and
    the risk-coverage table."""
    left = record["left_out"]
    print(
        f"documents: {record['n']}"
        + (f" ({left} labels that are not numbers left out)" if left else "")
        + f"; read right {record['accuracy']:.1%}, no number found in {record['no_number']}, "
        f"{record['strings_per_second']:.0f} images/s"
    )
    default, best = record["default"], record["at_99"]
    print(
        f"accepted at the reader's threshold {default['threshold']:.6g}: "
        f"{default['accepted']:.1%}, {_right(default['right'])} right"
    )
    if best:
        count = round(best["coverage"] * record["n"])
        print(
            f"accepted where 99% right: {best['coverage']:.1%}, {_count(count, 'reading')} "
            f"(--min-confidence {best['threshold']:.6g})"
            + ("; too few to show that 99% are right" if count < SHOWS_99 else "")
        )
    _sure_mistakes(
        record["sure_mistakes"],
        "accepted and not as labelled (the reader's mistake or the label's: check them)",
        f"{path}, sure_mistakes",
    )
    rows = [
        [f"{r['threshold']:g}", f"{r['accepted']:.1%}", _right(r["right"])]
        for r in record["risk_coverage"]
    ]
    print_table(["min_confidence", "accepted", "right"], rows)
    print(f"record: {path}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _right(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _share(part: dict) -> str:
    return "-" if part["accuracy"] is None else f"{part['accuracy']:.4f}"


def prune_summary(method: str, run) -> None:
    """What pruning bought (sparsity, size, speed at each batch size) and cost (accuracy)."""
    m = run.metrics
    batch = [k for k in m if k.startswith("images_per_second_batch_") and k.endswith("_after")]
    print(
        f"{method}: sparsity {m['sparsity']:.3f}; nonzero parameters "
        f"{m['nonzero_parameters_before']:,} -> {m['nonzero_parameters_after']:,}; xz "
        f"{m['xz_bytes_before'] / 1e3:,.0f} kB -> {m['xz_bytes_after'] / 1e3:,.0f} kB "
        f"({m['xz_bytes_before'] / m['xz_bytes_after']:.1f}x smaller)"
    )
    for key in sorted(batch, key=lambda k: int(k.split("_")[-2])):
        size, before = key.split("_")[-2], m[key.replace("_after", "_before")]
        print(f"images/s at batch {size}: {before:,.0f} -> {m[key]:,.0f} "
              f"({m[key] / before:.2f}x)")  # fmt: skip
    print(f"test_accuracy {m['parent_test_accuracy']:.4f} -> {m['test_accuracy']:.4f}")
    result_line(m, run.path)


def runs_table(found) -> None:
    rows = [
        [r.name, r.preset, f"{r.metrics['test_accuracy']:.4f}", r.provenance.get("created", "?")]
        for r in found
    ]
    print_table(["run", "preset", "test_accuracy", "created"], rows)


def result_line(metrics: dict, run_dir) -> None:
    """The line a command that makes a run ends with (scripts parse it)."""
    print(f"test_accuracy={metrics['test_accuracy']:.4f} test_loss={metrics['test_loss']:.4f} "
          f"run={run_dir}")  # fmt: skip


def adapted(adapted) -> None:
    """What `adapt` measured on the labels it held out, and where the reader is."""
    record = adapted.record
    before, after = record["before"], record["after"]
    print(f"held out {record['held_out']} of {record['held_out'] + record['trained_on']} "
          f"labelled images; read right: before {before['accuracy']:.1%}, "
          f"after {after['accuracy']:.1%}")  # fmt: skip
    alone = record["line_models_alone"]["accuracy"]
    if record["adapted"]:
        how = "and the classifier" if record["classifier"] else "alone"
        print(f"digits read by the adapted line models {how} (line models alone: {alone:.1%})")
    else:
        best = max(alone, record["line_models_and_classifier"]["accuracy"])
        print(f"the adapted line models read fewer of them ({best:.1%}): the run's reader is "
              "kept; more labelled images may help")  # fmt: skip
    if record["min_confidence"] >= 1:
        print("min_confidence=1: the surest held-out readings are not 99% right, so every "
              "reading is marked unsure (read's --min-confidence chooses another)")  # fmt: skip
    elif after["accepted"] == 0:
        print(f"min_confidence={record['min_confidence']:.4f}, read's default: none of them "
              "is read that surely")  # fmt: skip
    else:
        accepted = after["accepted_readings"]
        print(f"min_confidence={record['min_confidence']:.4f}: accepts {accepted} of them "
              f"({after['accepted']:.1%}), {after['accepted_right']:.1%} right "
              f"(before: {before['accepted']:.1%})")  # fmt: skip
        if accepted < SHOWS_99:
            print("too few to show that 99% are right: `evaluate --documents` on labelled "
                  "images adapt has not seen measures it")  # fmt: skip
    _sure_mistakes(
        after["sure_mistakes"],
        "read surely and not as labelled (a label that is not what the image shows raises "
        "the threshold: check them, correct and adapt again)",
        "reader/reader.json, after.sure_mistakes",
        noun="held-out image",
    )
    print(f"reader={adapted.path}")


def _sure_mistakes(mistakes: list[dict], what: str, where: str, noun: str = "image") -> None:
    """The readings accepted and not as labelled (reader.sure_mistakes), surest first."""
    if not mistakes:
        return
    print(f"{_count(len(mistakes), noun)} {what}:")
    for m in mistakes[:SURE_MISTAKES_SHOWN]:
        print(f"  {m['file']}: labelled {m['label']}, read {m['read']} "
              f"(confidence {m['confidence']:.6f})")  # fmt: skip
    if len(mistakes) > SURE_MISTAKES_SHOWN:
        print(f"  and {len(mistakes) - SURE_MISTAKES_SHOWN} more: {where}")


def print_trial(study, trial) -> None:
    """A finished trial's line, through tqdm, so that the progress bar stays whole."""
    from tqdm import tqdm

    from mnistlab.tune import trial_line

    tqdm.write(trial_line(trial))


def data_table(data) -> None:
    """Where the data came from, and each split's shapes and class counts."""
    print(f"data: {data.source} (sha256 {data.sha256[:12]}...)")
    splits = [("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)]
    print_table(
        ["split", "images", "labels", "dtype", *map(str, range(NUM_CLASSES))],
        [[name, x.shape, y.shape, x.dtype, *class_counts(y)] for name, x, y in splits],
    )


def layers_table(rows: list[tuple[str, str, str, int]]) -> None:
    table = [[name, kind, shape, f"{params:,}"] for name, kind, shape, params in rows]
    print_table(["layer", "type", "output shape", "parameters"], table)
    print(f"total parameters: {sum(r[3] for r in rows):,}")

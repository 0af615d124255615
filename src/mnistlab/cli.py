"""The `mnistlab` command: parse options, build a config, make one library call, print.

Options come from the config dataclasses' fields (their help and choices live there,
once). Keras is imported only inside the commands that need it, so `mnistlab --help` is
instant.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import sys
import threading
import typing
from pathlib import Path

from mnistlab import backend, progress, runs
from mnistlab.config import (
    NUM_CLASSES,
    PRESETS,
    ConfigError,
    EnsembleConfig,
    ExportConfig,
    PredictConfig,
    PruneConfig,
    ReadConfig,
    ServeConfig,
    TrainConfig,
    TuneConfig,
    preset_config,
)
from mnistlab.data import ENV_VAR, class_counts, load_digits_set, load_mnist
from mnistlab.errors import UserError
from mnistlab.options import add_fields, as_flags, config_values

EXIT_USAGE = 2
TOP_TRIALS = 5
# evaluate --strings reports the threshold at which accepted readings are this often right.
STRICT_ACCURACY = 0.995


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        notice = backend.choose()  # before anything imports Keras
        if notice:
            print(f"mnistlab: warning: {notice}", file=sys.stderr)
        if args.needs_keras:
            backend.import_keras_lean()
        return args.handler(args)
    except ConfigError as e:  # it names a field; the user typed a flag
        print(f"mnistlab: error: {as_flags(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as e:
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if e.filename is None:  # not about a file the user named or owns: a bug
            raise
        # A read-only run folder, a full disk, a file where a folder should be.
        print(f"mnistlab: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mnistlab: interrupted", file=sys.stderr)
        return 130


def run() -> typing.NoReturn:
    """The `mnistlab` command: main(), then the end of the process as Python's own exit
    would make it (other threads awaited, exit handlers run, output flushed), without
    first taking apart Keras' and JAX's thousands of modules: 0.7 s of every command."""
    try:
        code = main()
    except BrokenPipeError:  # `mnistlab ... | head`: the reader has all it wanted
        code = 1  # as Python's documentation advises
    if sys.getprofile() or sys.gettrace():  # a profiler's or debugger's report comes after
        sys.exit(code)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, as Python ignores
            stream.flush()
    os._exit(code)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is a --help away)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mnistlab", description="Train, evaluate and serve MNIST digit models.")
    parser.add_argument(
        "--version", action="version", version=f"mnistlab {importlib.metadata.version('mnistlab')}"
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add in (_add_train, _add_tune, _add_evaluate, _add_predict, _add_read, _add_serve,
                _add_compare, _add_ensemble, _add_prune, _add_export, _add_runs,
                _add_show_data, _add_summary):  # fmt: skip
        add(commands)
    return parser


def _command(
    commands, name: str, help: str, handler, description: str | None = None, keras: bool = True
):
    """A subcommand; `keras`: whether it needs Keras, imported lean before it runs."""
    parser = commands.add_parser(name, help=help, description=description or help)
    parser.set_defaults(handler=handler, needs_keras=keras)
    return parser


def _data_option(parser, what: str = "mnist.npz or a folder of the four IDX files") -> None:
    parser.add_argument(
        "--data", type=Path, help=f"{what} (default: ${ENV_VAR}, else Keras' download of MNIST)"
    )


def _quiet_option(parser, help: str) -> None:
    parser.add_argument("--quiet", action="store_true", help=help)


def _add_train(commands) -> None:
    p = _command(
        commands,
        "train",
        "train a model and evaluate it on the test set",
        _train,
        description=(
            "Train a preset on MNIST, keep the best checkpoint, TensorBoard logs and the final "
            "model in a run folder, and print the test accuracy. Options left out take the "
            "preset's value (shown: the default preset's). Starting again with the --run-dir of "
            "an interrupted run resumes it."
        ),
    )
    add_fields(p, TrainConfig, base=TrainConfig())
    _data_option(p)
    p.add_argument(
        "--run-dir",
        type=Path,
        help=f"run folder (default: {runs.DEFAULT_ROOT}/<YYYYmmdd-HHMMSS>-<preset>)",
    )
    _quiet_option(p, "no progress bar or per-epoch lines")
    p.add_argument(
        "--from-study",
        metavar="NAME",
        help="train the best configuration of this tuning study (instead of --preset)",
    )
    p.add_argument(
        "--storage", help="with --from-study: the study's storage URL (default: its SQLite file)"
    )


def _train(args: argparse.Namespace) -> int:
    given = config_values(TrainConfig, args)
    preset = given.pop("preset", TrainConfig.preset)
    if args.from_study:
        from mnistlab.tune import best_config, load_study

        base = best_config(load_study(args.from_study, args.storage, runs.DEFAULT_ROOT))
        config = dataclasses.replace(base, **given)
    else:
        config = preset_config(preset, **given)
    # Load and check the data before any run folder exists, so bad data leaves nothing.
    data = load_mnist(args.data)
    run_dir = args.run_dir or runs.new_run_dir(runs.DEFAULT_ROOT, config.preset)
    if runs.is_resumable(run_dir):
        print(f"mnistlab: resuming the interrupted run in {run_dir}", file=sys.stderr)
    from mnistlab.training import train  # Imports Keras: seconds, so only here.

    # Keras' dynamic progress bar is for terminals; logs get one line per epoch.
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    run = train(config, data, run_dir, verbose=verbose)
    print(
        f"test_accuracy={run.metrics['test_accuracy']:.4f} "
        f"test_loss={run.metrics['test_loss']:.4f} run={run_dir}"
    )
    return 0


def _add_tune(commands) -> None:
    p = _command(
        commands,
        "tune",
        "search hyperparameters with Optuna, then train the best configuration",
        _tune,
        description=(
            "Run an Optuna study over the preset's layers, units, dropout, L2, optimizer, "
            "learning rate and batch size, judged on validation accuracy (never the test "
            "set). Running it again with the same --study resumes it; workers on several "
            "machines share one study through --storage postgresql://... At the end: the "
            "top trials, study.json and figures in runs/studies/<study>/, the best "
            "configuration trained as a normal run, and a comparison with the reference run."
        ),
    )
    add_fields(p, TuneConfig)
    _data_option(p)
    p.add_argument(
        "--no-retrain",
        action="store_true",
        help="only search; do not train the best configuration (for extra workers)",
    )
    _quiet_option(p, "no progress bar (a line per trial still)")


def _tune(args: argparse.Namespace) -> int:
    config = TuneConfig(**config_values(TuneConfig, args))
    data = load_mnist(args.data)
    from mnistlab import tune

    done = tune.search(
        config,
        data,
        runs.DEFAULT_ROOT,
        on_trial=_print_trial,
        progress=not args.quiet,
        retrain=not args.no_retrain,
    )
    trials = done.record["trials"]
    completed = sum(t["state"] == "COMPLETE" for t in trials)
    print(f"study {config.study}: {len(trials)} trials, {completed} completed")
    top = tune.top_trials(done.record, TOP_TRIALS)
    params = [tune.format_params(t["params"]) for t in top]
    print_table(
        ["trial", "val_accuracy", "seconds", "params"],
        [[t["number"], f"{t['value']:.4f}", f"{t['seconds'] or 0:.0f}", p]
         for t, p in zip(top, params, strict=True)],
    )  # fmt: skip
    best = tune.best_trial(done.study)
    best_params = tune.format_params(best.params)
    print(f"best trial {best.number}: val_accuracy={best.value:.4f} {best_params}")
    print(f"study: {done.folder / tune.STUDY_JSON}")
    if done.tuned is not None:
        print_table(list(done.comparison[0]), [list(r.values()) for r in done.comparison])
        print(f"tuned run: {done.tuned.path}")
    return 0


def _print_trial(study, trial) -> None:
    """Through tqdm, so that the progress bar stays whole."""
    from tqdm import tqdm

    from mnistlab.tune import trial_line

    tqdm.write(trial_line(trial))


def _add_evaluate(commands) -> None:
    p = _command(
        commands,
        "evaluate",
        "evaluate a run: metrics, figures and an HTML report",
        _evaluate,
        description=(
            "Evaluate a finished run on the MNIST test set, or on any labelled digits given "
            "with --data: accuracy, loss, per-class precision/recall/F1, confusion matrix, "
            "misclassified images. Writes evaluation.json, figures/ and report.html into the "
            "run (under evaluations/<model>-<data>/ for another model or data set)."
        ),
    )
    p.add_argument("run", type=Path, help="run folder")
    _data_option(
        p,
        "labelled digits: npz with x_test/y_test or x/y, an IDX folder, or sklearn-digits "
        "(scikit-learn's 8x8 digits made MNIST-style)",
    )
    add_fields(p, PredictConfig, names=("model",))
    p.add_argument(
        "--strings",
        type=int,
        default=0,
        metavar="N",
        help="also read N numbers written with the test digits (touching pairs, ruled "
        "lines, specks, boxes, margins; seeded) through `mnistlab read`'s code",
    )
    p.add_argument(
        "--string-length", type=int, metavar="L", help="with --strings: every number L digits long"
    )


def _evaluate(args: argparse.Namespace) -> int:
    if args.strings < 0 or (args.string_length is not None and args.string_length < 1):
        raise ConfigError("--strings and --string-length must be positive")
    run = runs.open_run(args.run)
    digits = load_digits_set(args.data)
    from mnistlab.metrics import coverage_at, format_report
    from mnistlab.report.evaluation import evaluate_run

    evaluation = evaluate_run(run, digits, args.model, args.strings, args.string_length)
    print(format_report(evaluation.metrics))
    if args.strings:
        strings = evaluation.record["strings"]
        sure = coverage_at(strings["risk_coverage"], STRICT_ACCURACY)
        print(
            f"strings: {strings['string_accuracy']:.4f} string accuracy "
            f"(touching pair {_share(strings['touching'])}, "
            f"none {_share(strings['not_touching'])}), "
            f"digit accuracy {strings['digit_accuracy']:.4f}, "
            f"{strings['strings_per_second']:.0f} strings/s; "
            + (
                f"at --min-confidence {sure['threshold']:.6g}, {sure['coverage']:.1%} accepted, "
                f"{sure['accuracy']:.2%} of them right"
                if sure
                else f"no threshold makes the accepted {STRICT_ACCURACY:.1%} right"
            )
        )
    print(f"report: {evaluation.folder / runs.REPORT}")
    return 0


def _share(part: dict) -> str:
    return "-" if part["accuracy"] is None else f"{part['accuracy']:.4f}"


def _add_predict(commands) -> None:
    p = _command(
        commands,
        "predict",
        "read digits in image files (photos, scans, drawings)",
        _predict,
        description=(
            "Predict the digit in each image (PNG, JPEG, BMP, GIF, TIFF; any size and mode; "
            "dark ink on light paper or light on dark). Each image is preprocessed as MNIST "
            "was made: inverted to white on black, background removed, cropped, fitted into "
            "20x20 and centred by centre of mass in 28x28. A folder means every image in it."
        ),
    )
    add_fields(p, PredictConfig)
    _image_arguments(p)


def _image_arguments(parser) -> None:
    """What predict and read both take: the images, and --json."""
    parser.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE", help="image files or folders"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line and file")


def _each_file(args: argparse.Namespace, answer_all, describe, done: str, sep: str) -> int:
    """Answer every image file named (folders: the images in them) as `answer_all(files)`
    yields (path, answer or UserError), `describe(answer)` giving (JSON record, text,
    unsure): a line each, above a progress bar on a terminal; a note for each file
    skipped; one closing count. Exit status 1 if a file failed ('unsure' is an answer)."""
    from mnistlab.images import image_files, skip_reason

    files, skipped = image_files(args.images)
    for path in skipped:
        print(f"skipped {_shown(path)}: {skip_reason(path)}", file=sys.stderr, flush=True)
    counts = dict.fromkeys((done, "unsure", "failed"), 0)
    with progress.bar(len(files), "file") as bar:
        for path, answer in answer_all(files):
            if isinstance(answer, UserError):
                counts["failed"] += 1
                record, line = {"error": _shown(answer)}, f"error: {_shown(answer)}"
            else:
                record, line, unsure = describe(answer)
                counts["unsure" if unsure else done] += 1
            shown = _shown(path)
            bar.write(json.dumps({"file": shown, **record}) if args.json else f"{shown}{sep}{line}")
            sys.stdout.flush()  # a reader of the pipe sees each answer when it is made
            bar.update()
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    summary += f", {len(skipped)} skipped" if skipped else ""
    files_ = f"{len(files)} file{'s' if len(files) != 1 else ''}"
    print(f"{files_}: {summary}", file=sys.stderr if args.json else sys.stdout)
    return 1 if counts["failed"] else 0


def _shown(thing: object) -> str:
    """Text that any UTF-8 reader takes: bytes of a file name that are not UTF-8 (which
    Python holds as lone surrogates) written as visible escapes, as `ls -b` does."""
    text = str(thing)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _predict(args: argparse.Namespace) -> int:
    config = PredictConfig(**config_values(PredictConfig, args))
    from mnistlab.predictor import predict_paths

    def describe(answer):
        return answer.as_record(config.top_k), answer.line(config.top_k), answer.digit is None

    return _each_file(args, lambda files: predict_paths(config, files), describe, "predicted", ": ")


def _add_read(commands) -> None:
    p = _command(
        commands,
        "read",
        "read whole numbers (several digits on a line) in image files",
        _read,
        description=(
            "Read the number written in each image: a ZIP code, an amount, a field cut from "
            "a form. The digits are found on the paper (ruled lines, a box, specks and a "
            "scanner's margin are left out), split where they touch, and read with the run's "
            "model. One line per file: the digits, and the estimated chance that all of them "
            "are right. A folder means every image in it."
        ),
    )
    add_fields(p, ReadConfig)
    _image_arguments(p)


def _read(args: argparse.Namespace) -> int:
    config = ReadConfig(**config_values(ReadConfig, args))
    from mnistlab.read.reader import read_paths

    def describe(reading):
        return reading.as_record(), reading.line(), reading.unsure

    return _each_file(args, lambda files: read_paths(config, files), describe, "read", "  ")


def _add_serve(commands) -> None:
    p = _command(
        commands,
        "serve",
        "serve the drawing page and the JSON API (FastAPI + uvicorn)",
        _serve,
        description=(
            "Serve a run's model: GET / is a page to draw a digit on; POST /predict and "
            "POST /v1/models/mnist:predict (TensorFlow Serving's REST format) answer JSON; "
            "GET /health, GET /metadata and the OpenAPI docs at /docs."
        ),
    )
    add_fields(p, ServeConfig)


def _serve(args: argparse.Namespace) -> int:
    config = ServeConfig(**config_values(ServeConfig, args))
    from mnistlab.serve import serve

    serve(config)
    return 0


def _add_compare(commands) -> None:
    p = _command(
        commands,
        "compare",
        "compare runs side by side: a table and compare.html",
        _compare,
        description=(
            "Measure every run on the same test digits and print a table (model, parameters, "
            "epochs, training seconds, test accuracy, test loss); write an HTML page with "
            "overlaid learning curves and the confusion matrices side by side."
        ),
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders")
    _data_option(p, "labelled digits to measure on (as for evaluate)")
    p.add_argument(
        "--out", type=Path, default=Path("compare.html"), help="HTML page to write (compare.html)"
    )


def _compare(args: argparse.Namespace) -> int:
    compared = [runs.open_run(r) for r in args.runs]
    digits = load_digits_set(args.data)
    from mnistlab.report.evaluation import compare_runs

    rows, page = compare_runs(compared, digits)
    print_table(list(rows[0]), [list(row.values()) for row in rows])
    runs.write_bytes(args.out, page.encode())
    print(f"report: {args.out}")
    return 0


def _add_ensemble(commands) -> None:
    p = _command(
        commands,
        "ensemble",
        "make an ensemble run that averages other runs' probabilities",
        _ensemble,
        description=(
            "Average the class probabilities of finished runs into one model, saved as a run "
            "folder that evaluate, predict, serve and compare use like any run; print its "
            "test accuracy and its members'."
        ),
    )
    add_fields(p, EnsembleConfig)
    p.add_argument("--out", type=Path, required=True, help="the ensemble's run folder")
    _data_option(p, "mnist.npz or a folder of the four IDX files, for the test accuracy")


def _ensemble(args: argparse.Namespace) -> int:
    config = EnsembleConfig(**config_values(EnsembleConfig, args))
    for member in config.members:
        runs.open_run(member)
    data = load_mnist(args.data)
    from mnistlab.ensemble import make_ensemble

    metrics = make_ensemble(config, data, args.out).metrics
    print(f"members: {' '.join(f'{a:.4f}' for a in metrics['member_test_accuracy'])}")
    print(
        f"test_accuracy={metrics['test_accuracy']:.4f} "
        f"test_loss={metrics['test_loss']:.4f} run={args.out}"
    )
    return 0


def _add_prune(commands) -> None:
    p = _command(
        commands,
        "prune",
        "make a smaller or sparser copy of a run, fine-tuned to keep its accuracy",
        _prune,
        description=(
            "Prune a finished run's model into a new run that every other command uses like "
            "any run: magnitude zeroes the smallest weights gradually while fine-tuning (a "
            "smaller compressed file, same speed); units removes the least important hidden "
            "units and conv filters and rebuilds the model narrower (faster). Prints what it "
            "bought and cost; metrics.json has it all."
        ),
    )
    add_fields(p, PruneConfig)
    p.add_argument(
        "--out", type=Path, help=f"the pruned run's folder (default: {runs.DEFAULT_ROOT}/"
        "<YYYYmmdd-HHMMSS>-<preset>-pruned)",
    )  # fmt: skip
    _data_option(p)
    _quiet_option(p, "no progress bar or per-epoch lines")


def _prune(args: argparse.Namespace) -> int:
    config = PruneConfig(**config_values(PruneConfig, args))
    parent = runs.open_run(config.run)  # an unfinished run fails here, before any data
    data = load_mnist(args.data)
    out = args.out or runs.new_run_dir(runs.DEFAULT_ROOT, f"{parent.preset}-pruned")
    from mnistlab.prune import prune  # Imports Keras: seconds, so only here.

    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    m = prune(config, data, out, verbose=verbose).metrics
    batch = [k for k in m if k.startswith("images_per_second_batch_") and k.endswith("_after")]
    print(
        f"{config.method}: sparsity {m['sparsity']:.3f}; nonzero parameters "
        f"{m['nonzero_parameters_before']:,} -> {m['nonzero_parameters_after']:,}; xz "
        f"{m['xz_bytes_before'] / 1e3:,.0f} kB -> {m['xz_bytes_after'] / 1e3:,.0f} kB "
        f"({m['xz_bytes_before'] / m['xz_bytes_after']:.1f}x smaller)"
    )
    for key in sorted(batch, key=lambda k: int(k.split("_")[-2])):
        size, before = key.split("_")[-2], m[key.replace("_after", "_before")]
        print(f"images/s at batch {size}: {before:,.0f} -> {m[key]:,.0f} "
              f"({m[key] / before:.2f}x)")  # fmt: skip
    print(f"test_accuracy {m['parent_test_accuracy']:.4f} -> {m['test_accuracy']:.4f}")
    print(f"test_accuracy={m['test_accuracy']:.4f} test_loss={m['test_loss']:.4f} run={out}")
    return 0


def _add_export(commands) -> None:
    p = _command(
        commands,
        "export",
        "write a run's model as ONNX, .keras, .h5 or a SavedModel, and check it",
        _export,
        description=(
            "Export a run's model, then run the export on the 10,000 test images and compare "
            "it with Keras: the largest difference in probabilities (a float export fails "
            "above 1e-4 and is not kept) and both accuracies. --quantize int8 also writes "
            "an int8 ONNX model with ONNX Runtime's quantization and reports its size and "
            "accuracy."
        ),
    )
    add_fields(p, ExportConfig)
    _data_option(p, "mnist.npz or a folder of the four IDX files, for the check")


def _export(args: argparse.Namespace) -> int:
    config = ExportConfig(**config_values(ExportConfig, args))
    runs.open_run(config.run)
    data = load_mnist(args.data)
    from mnistlab.export import export_run, summary

    print(summary(export_run(config, data)))
    return 0


def _add_runs(commands) -> None:
    p = _command(commands, "runs", "list finished runs, newest first", _list_runs, keras=False)
    p.add_argument(
        "--root", type=Path, default=runs.DEFAULT_ROOT, help=f"folder of runs ({runs.DEFAULT_ROOT})"
    )


def _list_runs(args: argparse.Namespace) -> int:
    found, damaged = runs.list_runs(args.root)
    for error in damaged:  # one damaged run must not hide the others
        print(f"mnistlab: warning: skipped {error}", file=sys.stderr)
    if not found:
        print(f"no finished runs in {args.root}")
        return 0
    rows = [
        [r.name, r.preset, f"{r.metrics['test_accuracy']:.4f}", r.provenance.get("created", "?")]
        for r in found
    ]
    print_table(["run", "preset", "test_accuracy", "created"], rows)
    return 0


def _add_show_data(commands) -> None:
    p = _command(
        commands,
        "show-data",
        "print the data set's shapes and class counts; draw its first 25 images",
        _show_data,
        keras=False,
    )
    _data_option(p)
    p.add_argument("--out", type=Path, default=Path("mnist-samples.png"), help="PNG grid to write")
    p.add_argument(
        "--augment", action="store_true", help="draw the images as training augments them"
    )
    p.add_argument("--seed", type=int, default=0, help="augmentation seed (0)")
    add_fields(p, TrainConfig, names=("augment_strength",))


def _show_data(args: argparse.Namespace) -> int:
    # train's checks and messages for the same two options
    TrainConfig(augment=args.augment, augment_strength=args.augment_strength)
    data = load_mnist(args.data)
    from mnistlab import augment
    from mnistlab.report import plots

    print(f"data: {data.source} (sha256 {data.sha256[:12]}...)")
    splits = [("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)]
    print_table(
        ["split", "images", "labels", "dtype", *map(str, range(NUM_CLASSES))],
        [[name, x.shape, y.shape, x.dtype, *class_counts(y)] for name, x, y in splits],
    )
    images, title = data.x_train[:25], "First 25 training images"
    if args.augment:
        images = augment.preview(images, args.seed, args.augment_strength)
        title = f"{title}, augmented (seed {args.seed}, strength {args.augment_strength:g})"
    grid = plots.digit_grid(images, [f"label {y}" for y in data.y_train[:25]], title=title)
    runs.write_bytes(args.out, plots.to_png(grid))
    print(f"grid: {args.out}")
    return 0


def _add_summary(commands) -> None:
    p = _command(
        commands, "summary", "print a model's layers, output shapes and parameters", _summary
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("run", type=Path, nargs="?", help="run folder (its final model)")
    which.add_argument("--preset", choices=list(PRESETS), help="a preset, untrained")


def _summary(args: argparse.Namespace) -> int:
    run = runs.open_run(args.run) if args.run is not None else None
    from mnistlab.models import build_model, layer_table

    model = run.model if run is not None else build_model(preset_config(args.preset))
    rows = layer_table(model)
    table = [[name, kind, shape, f"{params:,}"] for name, kind, shape, params in rows]
    print_table(["layer", "type", "output shape", "parameters"], table)
    print(f"total parameters: {sum(r[3] for r in rows):,}")
    return 0


def print_table(header: list[str], rows: list[list]) -> None:
    """A text table on standard output: columns padded to their widest cell, numbers
    right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(header))]
    for row in cells:
        print(
            "  ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True

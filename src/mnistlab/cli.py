"""The `mnistlab` command: a table of commands, each parsing its options into its config,
making one library call and printing the result.

Options come from the config dataclasses' fields (their help and choices live there,
once). Keras is imported only for the commands that need it, so `mnistlab --help` is
instant.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import importlib.metadata
import os
import sys
import threading
import typing
from collections.abc import Callable
from pathlib import Path

from mnistlab import backend, output, runs
from mnistlab.config import (
    PRESETS,
    AdaptConfig,
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
from mnistlab.data import ENV_VAR, load_digits_set, load_mnist
from mnistlab.errors import UserError
from mnistlab.options import add_fields, as_flags, config_values
from mnistlab.output import each_file, print_table

EXIT_USAGE = 2
TOP_TRIALS = 5
# evaluate --strings reports the threshold at which accepted readings are this often right.
STRICT_ACCURACY = 0.995


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: its handler gets its config (built from the options made from the
    config's fields) and the parsed args (for the options that are not config fields);
    its docstring is the command's description in --help."""

    name: str
    help: str
    handler: Callable[[typing.Any, argparse.Namespace], int]
    config: type | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None  # after the config's
    options: tuple[tuple[tuple[str, ...], dict], ...] = ()  # made with arg(); last
    keras: bool = True  # whether it needs Keras, imported lean before it runs


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, config: type | None = None, **kwargs) -> Callable:
    """Register the decorated handler as `mnistlab NAME`."""

    def register(handler):
        COMMANDS[name] = Command(name, help, handler, config, **kwargs)
        return handler

    return register


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        notice = backend.choose()  # before anything imports Keras
        if notice:
            print(f"mnistlab: warning: {notice}", file=sys.stderr)
        chosen = args.command
        if chosen.keras:
            backend.import_keras_lean()
        config = chosen.config(**config_values(chosen.config, args)) if chosen.config else None
        return chosen.handler(config, args)
    except ConfigError as e:  # it names a field; the user typed a flag
        print(f"mnistlab: error: {as_flags(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as e:
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if e.filename is None:  # not about a file the user named or owns: a bug
            raise
        # A read-only run folder, a file where a folder should be.
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
    for c in COMMANDS.values():
        sub = commands.add_parser(c.name, help=c.help, description=c.handler.__doc__ or c.help)
        if c.config is not None:
            add_fields(sub, c.config)
        if c.arguments is not None:
            c.arguments(sub)
        for flags, kwargs in c.options:
            sub.add_argument(*flags, **kwargs)
        sub.set_defaults(command=c)
    return parser


# What several commands take.


def arg(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """An argparse argument, declared: add_argument(*flags, **kwargs)."""
    return flags, kwargs


def data(what: str = "mnist.npz or a folder of the four IDX files") -> tuple:
    help = f"{what} (default: ${ENV_VAR}, else Keras' download of MNIST)"
    return arg("--data", type=Path, help=help)


def quiet(help: str = "no progress bar or per-epoch lines") -> tuple:
    return arg("--quiet", action="store_true", help=help)


IMAGES = (
    arg("images", type=Path, nargs="+", metavar="IMAGE", help="image files or folders"),
    arg("--json", action="store_true", help="one JSON object per line and file"),
    arg("--jobs", type=lambda text: _positive("--jobs", text), metavar="N",
        help="worker processes, each with the model loaded once, or with --ray actors "
        "(default: the usable cores, or with --ray one per CPU of the cluster)"),
    arg("--out", type=Path, metavar="FILE",
        help="write a JSON record per file into FILE (JSON lines) instead of printing it; "
        "the same command run again skips the files FILE has, so a killed run resumes"),
    arg("--ray", nargs="?", const="", metavar="ADDRESS",
        help="read on a Ray cluster (default: the one this machine runs, else a new local "
        "one); needs pip install 'mnistlab[ray]'"),
)  # fmt: skip


def _positive(flag: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{flag} takes a whole number >= 1, got {text!r}")
    return int(text)


def _verbosity(args: argparse.Namespace) -> int:
    """Keras' dynamic progress bar is for terminals; logs get one line per epoch."""
    return 0 if args.quiet else (1 if sys.stdout.isatty() else 2)


TRAIN_OPTIONS = (
    data(),
    arg("--run-dir", type=Path,
        help=f"run folder (default: {runs.DEFAULT_ROOT}/<YYYYmmdd-HHMMSS>-<preset>)"),
    quiet(),
    arg("--from-study", metavar="NAME",
        help="train the best configuration of this tuning study (instead of --preset)"),
    arg("--storage", help="with --from-study: the study's storage URL (default: its SQLite file)"),
)  # fmt: skip


# Options left out keep the preset's values (base): the help shows the default preset's.
@command("train", "train a model and evaluate it on the test set", options=TRAIN_OPTIONS,
         arguments=lambda parser: add_fields(parser, TrainConfig, base=TrainConfig()))  # fmt: skip
def _train(_, args: argparse.Namespace) -> int:
    """Train a preset on MNIST, keep the best checkpoint, TensorBoard logs and the final model
    in a run folder, and print the test accuracy. Options left out take the preset's value
    (shown: the default preset's). Starting again with the --run-dir of an interrupted run
    resumes it."""
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

    run = train(config, data, run_dir, verbose=_verbosity(args))
    output.result_line(run.metrics, run_dir)
    return 0


@command("tune", "search hyperparameters with Optuna, then train the best configuration",
         TuneConfig, options=(
    data(),
    arg("--no-retrain", action="store_true",
        help="only search; do not train the best configuration (for extra workers)"),
    quiet("no progress bar (a line per trial still)"),
))  # fmt: skip
def _tune(config: TuneConfig, args: argparse.Namespace) -> int:
    """Run an Optuna study over the preset's layers, units, dropout, L2, optimizer, learning
    rate and batch size, judged on validation accuracy (never the test set). Running it
    again with the same --study resumes it; workers on several machines share one study
    through --storage postgresql://... At the end: the top trials, study.json and figures in
    runs/studies/<study>/, the best configuration trained as a normal run, and a comparison
    with the reference run."""
    data = load_mnist(args.data)
    from mnistlab import tune

    done = tune.search(config, data, runs.DEFAULT_ROOT, on_trial=output.print_trial,
                       progress=not args.quiet, retrain=not args.no_retrain)  # fmt: skip
    output.tune_summary(done, config, TOP_TRIALS)
    return 0


@command(
    "evaluate",
    "evaluate a run: metrics, figures and an HTML report",
    options=(
        arg("run", type=Path, help="run folder"),
        data("labelled digits: npz with x_test/y_test or x/y, an IDX folder, or sklearn-digits "
             "(scikit-learn's 8x8 digits made MNIST-style)"),
        arg("--strings", type=int, default=0, metavar="N",
            help="also read N numbers written with the test digits (touching pairs, ruled "
            "lines, specks, boxes, margins; seeded) through `mnistlab read`'s code"),
        arg("--string-length", type=int, metavar="L",
            help="with --strings: every number L digits long"),
        arg("--documents", type=Path, metavar="FOLDER",
            help="instead: read this folder of labelled images of numbers (documents) with "
            "the run's reader; print how many it reads right and its risk-coverage table"),
        arg("--labels", type=Path, metavar="CSV",
            help="with --documents: the labels, filename,label (default: FOLDER/labels.csv)"),
    ),
    arguments=lambda parser: add_fields(parser, PredictConfig, names=("model",)),
)  # fmt: skip
def _evaluate(_, args: argparse.Namespace) -> int:
    """Evaluate a finished run on the MNIST test set, or on any labelled digits given with
    --data: accuracy, loss, per-class precision/recall/F1, confusion matrix, misclassified
    images. Writes evaluation.json, figures/ and report.html into the run (under
    evaluations/<model>-<data>/ for another model or data set)."""
    if args.strings < 0 or (args.string_length is not None and args.string_length < 1):
        raise ConfigError("--strings and --string-length must be positive")
    run = runs.open_run(args.run)
    if args.documents:
        return _evaluate_documents(run, args)
    digits = load_digits_set(args.data)
    from mnistlab.report import evaluate_run

    evaluation = evaluate_run(run, digits, args.model, args.strings, args.string_length)
    output.evaluation_summary(evaluation, STRICT_ACCURACY)
    return 0


def _evaluate_documents(run: runs.Run, args: argparse.Namespace) -> int:
    """evaluate --documents: the run's reader on a labelled folder; its record is
    evaluations/documents-<folder>.json in the run."""
    from mnistlab.read import Reader, labelled
    from mnistlab.report import read_documents

    data = labelled.load(args.documents, args.labels, skip_other=True)
    record = read_documents(Reader.from_run(run, args.model), data)
    out = run.path / runs.EVALUATIONS / f"documents-{args.documents.resolve().name}.json"
    out.parent.mkdir(exist_ok=True)
    runs.write_json(out, {"model": args.model, "documents": str(args.documents), **record})
    output.documents_summary(record, out)
    return 0


@command("predict", "read digits in image files (photos, scans, drawings)", PredictConfig,
         options=IMAGES)  # fmt: skip
def _predict(config: PredictConfig, args: argparse.Namespace) -> int:
    """Predict the digit in each image (PNG, JPEG, BMP, GIF, TIFF; any size and mode; dark ink
    on light paper or light on dark). Each image is preprocessed as MNIST was made: inverted
    to white on black, background removed, cropped, fitted into 20x20 and centred by centre
    of mass in 28x28. A folder means every image in it."""
    from mnistlab.predictor import job

    return each_file(args, job(config), "predicted", ": ")


@command("read", "read whole numbers (several digits on a line) in image files", ReadConfig,
         options=IMAGES)  # fmt: skip
def _read(config: ReadConfig, args: argparse.Namespace) -> int:
    """Read the number written in each image: a ZIP code, an amount, a field cut from a form.
    The digits are found on the paper (ruled lines, a box, specks and a scanner's margin are
    left out), split where they touch, and read with the run's model. One line per file: the
    digits, and the estimated chance that all of them are right. A folder means every image
    in it."""
    from mnistlab.read import job

    return each_file(args, job(config), "read", "  ")


@command("adapt", "fit a run's reader to your own labelled documents", AdaptConfig, options=(
    arg("--out", type=Path, help=f"the adapted reader's run folder (default: {runs.DEFAULT_ROOT}/"
        "<YYYYmmdd-HHMMSS>-<preset>-adapted)"),
))  # fmt: skip
def _adapt(config: AdaptConfig, args: argparse.Namespace) -> int:
    """Fine-tune the reader's line models on a folder of labelled images (labels.csv:
    filename,label), holding out a share of them: print how many of those it read right
    before and after, and the threshold at which what it accepts is 99% right. Writes a copy
    of the run with the adapted reader, which read, serve, evaluate and the Python API take
    like any run. Killed, it resumes when run again with the same options."""
    run = runs.open_run(Path(config.run))
    out = args.out or runs.new_run_dir(runs.DEFAULT_ROOT, f"{run.preset}-adapted")
    from mnistlab.read.adapt import adapt

    output.adapted(adapt(config, out))
    return 0


@command("serve", "serve the drawing page and the JSON API (FastAPI + uvicorn)", ServeConfig)
def _serve(config: ServeConfig, _) -> int:
    """Serve a run's model: GET / is a page to draw a digit on; POST /predict and POST /read
    answer JSON, and so do TensorFlow Serving's REST API (/v1/models/mnist...) and the Open
    Inference Protocol (/v2/...); GET /health, GET /metadata and the OpenAPI docs at /docs."""
    from mnistlab.serve import serve

    serve(config)
    return 0


@command("compare", "compare runs side by side: a table and compare.html", options=(
    arg("runs", type=Path, nargs="+", metavar="RUN", help="run folders"),
    data("labelled digits to measure on (as for evaluate)"),
    arg("--out", type=Path, default=Path("compare.html"), help="HTML page to write (compare.html)"),
))  # fmt: skip
def _compare(_, args: argparse.Namespace) -> int:
    """Measure every run on the same test digits and print a table (model, parameters, epochs,
    training seconds, test accuracy, test loss); write an HTML page with overlaid learning
    curves and the confusion matrices side by side."""
    compared = [runs.open_run(r) for r in args.runs]
    digits = load_digits_set(args.data)
    from mnistlab.report import compare_runs

    rows, page = compare_runs(compared, digits)
    print_table(list(rows[0]), [list(row.values()) for row in rows])
    runs.write_bytes(args.out, page.encode())
    print(f"report: {args.out}")
    return 0


@command("ensemble", "make an ensemble run that averages other runs' probabilities",
         EnsembleConfig, options=(
    arg("--out", type=Path, required=True, help="the ensemble's run folder"),
    data("mnist.npz or a folder of the four IDX files, for the test accuracy"),
))  # fmt: skip
def _ensemble(config: EnsembleConfig, args: argparse.Namespace) -> int:
    """Average the class probabilities of finished runs into one model, saved as a run folder
    that evaluate, predict, serve and compare use like any run; print its test accuracy and
    its members'."""
    for member in config.members:
        runs.open_run(member)
    data = load_mnist(args.data)
    from mnistlab.ensemble import make_ensemble

    metrics = make_ensemble(config, data, args.out).metrics
    print(f"members: {' '.join(f'{a:.4f}' for a in metrics['member_test_accuracy'])}")
    output.result_line(metrics, args.out)
    return 0


@command("prune", "make a smaller or sparser copy of a run, fine-tuned to keep its accuracy",
         PruneConfig, options=(
    arg("--out", type=Path, help=f"the pruned run's folder (default: {runs.DEFAULT_ROOT}/"
        "<YYYYmmdd-HHMMSS>-<preset>-pruned)"),
    data(),
    quiet(),
))  # fmt: skip
def _prune(config: PruneConfig, args: argparse.Namespace) -> int:
    """Prune a finished run's model into a new run that every other command uses like any run:
    magnitude zeroes the smallest weights gradually while fine-tuning (a smaller compressed
    file, same speed); units removes the least important hidden units and conv filters and
    rebuilds the model narrower (faster). Prints what it bought and cost; metrics.json has
    it all."""
    parent = runs.open_run(config.run)  # an unfinished run fails here, before any data
    data = load_mnist(args.data)
    out = args.out or runs.new_run_dir(runs.DEFAULT_ROOT, f"{parent.preset}-pruned")
    from mnistlab.prune import prune  # Imports Keras: seconds, so only here.

    output.prune_summary(config.method, prune(config, data, out, verbose=_verbosity(args)))
    return 0


@command("export", "write a run's model as ONNX, .keras, .h5 or a SavedModel, and check it",
         ExportConfig,
         options=(data("mnist.npz or a folder of the four IDX files, for the check"),))  # fmt: skip
def _export(config: ExportConfig, args: argparse.Namespace) -> int:
    """Export a run's model, then run the export on the 10,000 test images and compare it with
    Keras: the largest difference in probabilities (a float export fails above 1e-4 and is
    not kept) and both accuracies. --quantize int8 also writes an int8 ONNX model with ONNX
    Runtime's quantization and reports its size and accuracy."""
    runs.open_run(config.run)
    data = load_mnist(args.data)
    from mnistlab.export import export_run, summary

    print(summary(export_run(config, data)))
    return 0


@command("runs", "list finished runs, newest first", keras=False, options=(
    arg("--root", type=Path, default=runs.DEFAULT_ROOT,
        help=f"folder of runs ({runs.DEFAULT_ROOT})"),
))  # fmt: skip
def _list_runs(_, args: argparse.Namespace) -> int:
    found, damaged = runs.list_runs(args.root)
    for error in damaged:  # one damaged run must not hide the others
        print(f"mnistlab: warning: skipped {error}", file=sys.stderr)
    if not found:
        print(f"no finished runs in {args.root}")
        return 0
    output.runs_table(found)
    return 0


@command("show-data", "print the data set's shapes and class counts; draw its first 25 images",
         keras=False, options=(
    data(),
    arg("--out", type=Path, default=Path("mnist-samples.png"), help="PNG grid to write"),
    arg("--augment", action="store_true", help="draw the images as training augments them"),
    arg("--seed", type=int, default=0, help="augmentation seed (0)"),
), arguments=lambda p: add_fields(p, TrainConfig, names=("augment_strength",)))  # fmt: skip
def _show_data(_, args: argparse.Namespace) -> int:
    # train's checks and messages for the same two options
    TrainConfig(augment=args.augment, augment_strength=args.augment_strength)
    data = load_mnist(args.data)
    from mnistlab import augment
    from mnistlab.report import plots

    output.data_table(data)
    images, title = data.x_train[:25], "First 25 training images"
    if args.augment:
        images = augment.preview(images, args.seed, args.augment_strength)
        title = f"{title}, augmented (seed {args.seed}, strength {args.augment_strength:g})"
    grid = plots.digit_grid(images, [f"label {y}" for y in data.y_train[:25]], title=title)
    runs.write_bytes(args.out, plots.to_png(grid))
    print(f"grid: {args.out}")
    return 0


def _summary_arguments(parser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("run", type=Path, nargs="?", help="run folder (its final model)")
    which.add_argument("--preset", choices=list(PRESETS), help="a preset, untrained")


@command("summary", "print a model's layers, output shapes and parameters",
         arguments=_summary_arguments)  # fmt: skip
def _summary(_, args: argparse.Namespace) -> int:
    run = runs.open_run(args.run) if args.run is not None else None
    from mnistlab.models import build_model, layer_table

    model = run.model if run is not None else build_model(preset_config(args.preset))
    output.layers_table(layer_table(model))
    return 0

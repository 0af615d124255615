"""The `mnistlab` command: parse options, build a config, make one library call, print.

Keras is imported only inside the commands that need it, so `mnistlab --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from pathlib import Path

import numpy as np

from mnistlab import __version__, runs
from mnistlab.config import (
    ENGINES,
    EXPORT_FORMATS,
    LR_SCHEDULES,
    MODELS,
    PRESETS,
    PRUNERS,
    QUANTIZATIONS,
    SAMPLERS,
    ConfigError,
    EnsembleConfig,
    ExportConfig,
    ServeConfig,
    TrainConfig,
    TuneConfig,
    override,
    preset_config,
)
from mnistlab.data import ENV_VAR, NUM_CLASSES, load_digits_set, load_mnist
from mnistlab.errors import UserError

DEFAULT_BACKEND = "jax"
EXIT_USAGE = 2
TOP_TRIALS = 5


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Keras reads its backend once, when first imported; JAX unless the user chose.
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    try:
        return args.handler(args)
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is a --help away)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mnistlab",
        description="Train, evaluate and serve MNIST digit models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _add_train(commands)
    _add_tune(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    _add_serve(commands)
    _add_compare(commands)
    _add_ensemble(commands)
    _add_export(commands)
    _add_runs(commands)
    _add_show_data(commands)
    _add_summary(commands)
    return parser


def _command(commands, name: str, help: str, handler, description: str | None = None):
    parser = commands.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _model_option(parser) -> None:
    parser.add_argument(
        "--model",
        default=MODELS[0],
        choices=MODELS,
        help="final_model.keras (best val_loss) or best_model.keras (best val_accuracy)",
    )


def _engine_option(parser) -> None:
    parser.add_argument(
        "--engine",
        default=ENGINES[0],
        choices=ENGINES,
        help="keras, or onnx: ONNX Runtime on the run's ONNX export (an .onnx file is "
        "always run with onnx)",
    )


def _data_option(parser, what: str) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"{what} (default: ${ENV_VAR}, else Keras' download of MNIST)",
    )


def _add_train(commands: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    p = commands.add_parser(
        "train",
        help="train a model and evaluate it on the test set",
        description=(
            "Train a preset on MNIST, keep the best checkpoint, TensorBoard logs and the final "
            "model in a run folder, and print the test accuracy. Options left out take the "
            "preset's value (shown: the default preset's). Starting again with the --run-dir of "
            "an interrupted run resumes it."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", default="deep-mlp", choices=list(PRESETS), help="model preset")
    _data_option(p, "mnist.npz or a folder of the four IDX files")
    p.add_argument("--epochs", type=int, help=f"most epochs ({defaults.epochs})")
    p.add_argument("--batch-size", type=int, help=f"batch size ({defaults.batch_size})")
    p.add_argument(
        "--learning-rate",
        type=float,
        help=f"learning rate, the peak of a schedule ({defaults.learning_rate})",
    )
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="constant; cosine decay; onecycle (warm-up then cosine decay); plateau (halve "
        f"when val_loss stalls 2 epochs) ({defaults.lr_schedule})",
    )
    p.add_argument(
        "--validation-split",
        type=float,
        help=f"last fraction of training images held out ({defaults.validation_split})",
    )
    p.add_argument(
        "--patience", type=int, help=f"early-stopping patience on val_loss ({defaults.patience})"
    )
    p.add_argument("--seed", type=int, help=f"random seed ({defaults.seed})")
    p.add_argument(
        "--limit", type=int, help="train on the first N training images only (default: all)"
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help=f"run folder (default: {runs.DEFAULT_ROOT}/<YYYYmmdd-HHMMSS>-<preset>)",
    )
    p.add_argument(
        "--h5", action="store_true", help="also save final_model.h5 (legacy HDF5 format)"
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="distort every training batch: shifts, rotation, scale, shear, elastic, stroke "
        "width, binarisation (seeded; never at inference)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument(
        "--from-study",
        metavar="NAME",
        help="train the best configuration of this tuning study (instead of --preset)",
    )
    p.add_argument(
        "--storage", help="with --from-study: the study's storage URL (default: its SQLite file)"
    )
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    base = PRESETS[args.preset]
    if args.from_study:
        from mnistlab.tune import best_config, load_study

        base = best_config(load_study(args.from_study, args.storage, runs.DEFAULT_ROOT))
    config = override(
        base,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        validation_split=args.validation_split,
        patience=args.patience,
        seed=args.seed,
        limit=args.limit,
        save_h5=args.h5 or None,
        augment=args.augment or None,
    )
    # Load and check the data before any run folder exists, so bad data leaves nothing.
    data = load_mnist(args.data)
    run_dir = args.run_dir or runs.new_run_dir(runs.DEFAULT_ROOT, config.preset)
    unfinished = (run_dir / runs.CONFIG).is_file() and not runs.is_finished(run_dir)
    if unfinished and runs.holder(run_dir) is None:
        print(f"mnistlab: resuming the interrupted run in {run_dir}", file=sys.stderr)
    from mnistlab.train import train  # Imports Keras: seconds, so only here.

    # Keras' dynamic progress bar is for terminals; logs get one line per epoch.
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    metrics = train(config, data, run_dir, verbose=verbose)
    print(
        f"test_accuracy={metrics['test_accuracy']:.4f} "
        f"test_loss={metrics['test_loss']:.4f} run={run_dir}"
    )
    return 0


def _add_tune(commands) -> None:
    defaults = TuneConfig()
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
    p.add_argument("--preset", default=defaults.preset, choices=list(PRESETS), help="base preset")
    p.add_argument(
        "--trials", type=int, default=defaults.trials, help="finished trials the study should hold"
    )
    p.add_argument("--repeats", type=int, default=defaults.repeats, help="trainings per trial")
    p.add_argument("--sampler", default=defaults.sampler, choices=SAMPLERS, help="Optuna sampler")
    p.add_argument("--pruner", default=defaults.pruner, choices=PRUNERS, help="Optuna pruner")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="most epochs per training")
    p.add_argument("--study", help="study name (default: <preset>-search)")
    p.add_argument(
        "--storage",
        help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: a SQLite file in the "
        "study folder)",
    )
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--limit", type=int, help="use the first N training images (default: all)")
    p.add_argument(
        "--seed", type=int, help="sampler seed (default: random, so workers explore differently)"
    )
    _data_option(p, "mnist.npz or a folder of the four IDX files")
    p.add_argument(
        "--no-retrain",
        action="store_true",
        help="only search; do not train the best configuration (for extra workers)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _tune(args: argparse.Namespace) -> int:
    config = TuneConfig(
        preset=args.preset,
        trials=args.trials,
        repeats=args.repeats,
        sampler=args.sampler,
        pruner=args.pruner,
        epochs=args.epochs,
        study=args.study or f"{args.preset}-search",
        storage=args.storage,
        timeout=args.timeout,
        limit=args.limit,
        seed=args.seed,
    )
    data = load_mnist(args.data)
    import optuna

    from mnistlab import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    root = runs.DEFAULT_ROOT
    study = tune.run_study(config, data, root, on_trial=_print_trial, progress=not args.quiet)
    folder = tune.study_dir(root, config.study)
    folder.mkdir(parents=True, exist_ok=True)
    record = tune.study_record(study, config)
    runs.write_json(folder / tune.STUDY_JSON, record)
    for name, png in tune.study_figures(study).items():
        runs.write_bytes(folder / f"{name}.png", png)

    finished = [t for t in record["trials"] if t["state"] == "COMPLETE"]
    top = sorted(finished, key=lambda t: t["value"], reverse=True)[:TOP_TRIALS]
    print(f"study {config.study}: {len(record['trials'])} trials, {len(finished)} completed")
    _print_table(
        ["trial", "val_accuracy", "seconds", "params"],
        [[t["number"], f"{t['value']:.4f}", f"{t['seconds'] or 0:.0f}", _params(t["params"])]
         for t in top],
    )  # fmt: skip
    best = tune.best_trial(study)
    print(f"best trial {best.number}: val_accuracy={best.value:.4f} {_params(best.params)}")
    print(f"study: {folder / tune.STUDY_JSON}")
    if args.no_retrain:
        return 0

    from mnistlab.evaluate import compare_runs
    from mnistlab.train import train

    tuned = runs.new_run_dir(root, f"{config.preset}-tuned")
    train(tune.best_config(study), data, tuned, verbose=0)
    reference_config = tune.base_config(config)
    reference = runs.find_run(root, reference_config.to_dict(), data.sha256)
    if reference is None:
        reference = runs.new_run_dir(root, config.preset)
        train(reference_config, data, reference, verbose=0)
    rows, page = compare_runs([reference, tuned], load_digits_set(data.source))
    _print_table(list(rows[0]), [list(row.values()) for row in rows])
    runs.write_bytes(folder / "compare.html", page.encode())
    print(f"tuned run: {tuned}")
    return 0


def _print_trial(study, trial) -> None:
    """One line per finished trial; through tqdm so that the progress bar stays whole."""
    from tqdm import tqdm

    value = "-" if trial.value is None else f"{trial.value:.4f}"
    seconds = trial.user_attrs.get("seconds") or 0.0
    tqdm.write(
        f"trial {trial.number} {trial.state.name.lower()}: val_accuracy={value} "
        f"epochs={(trial.last_step or 0) + 1} {seconds:.1f}s {_params(trial.params)}"
    )


def _params(params: dict) -> str:
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


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
    _model_option(p)


def _evaluate(args: argparse.Namespace) -> int:
    runs.require_finished(args.run)
    digits = load_digits_set(args.data)
    from mnistlab.evaluate import evaluate_run
    from mnistlab.metrics import format_report

    evaluation, out = evaluate_run(args.run, digits, args.model)
    print(format_report(evaluation["metrics"]))
    print(f"report: {out / runs.REPORT}")
    return 0


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
    p.add_argument("run", type=Path, help="run folder, or an .onnx file (mnistlab export)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--top-k", type=int, default=3, help="how many of the likeliest digits to show")
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="below this probability, answer 'unsure' instead of a digit",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line and file")
    _model_option(p)
    _engine_option(p)


def _predict(args: argparse.Namespace) -> int:
    if not 0.0 <= args.min_confidence <= 1.0:
        raise ConfigError(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
    if not 1 <= args.top_k <= NUM_CLASSES:
        raise ConfigError(f"--top-k must be in 1..{NUM_CLASSES}, got {args.top_k}")
    from mnistlab.images import image_files
    from mnistlab.predict import Predictor

    predictor = Predictor.load(args.run, args.model, args.engine)
    files = image_files(args.images)
    if not files:
        raise ConfigError("no image files found in the folders given")
    failed = 0
    for path, answer in predictor.predict_files(files, args.min_confidence):
        if isinstance(answer, UserError):
            failed += 1
            if args.json:
                print(json.dumps({"file": str(path), "error": str(answer)}))
            else:
                print(f"{path}: error: {answer}")
            continue
        top = answer.top(args.top_k)
        if args.json:
            ranked = [{"digit": d, "probability": round(q, 6)} for d, q in top]
            record = {"file": str(path), "digit": answer.digit, "top": ranked}
            print(json.dumps({**record, "probability": round(answer.probability, 6)}))
        else:
            said = "unsure" if answer.digit is None else str(answer.digit)
            others = " ".join(f"{d}:{q:.3f}" for d, q in top)
            print(f"{path}: {said} (p={answer.probability:.3f}) top: {others}")
    # Files that could not be read are errors; 'unsure' is an answer.
    return 1 if failed else 0


def _add_serve(commands) -> None:
    defaults = ServeConfig(run="")
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
    p.add_argument("run", type=Path, help="run folder, or an .onnx file (mnistlab export)")
    p.add_argument("--host", default=defaults.host, help="address to bind (loopback by default)")
    p.add_argument("--port", type=int, default=defaults.port, help="TCP port")
    p.add_argument("--workers", type=int, default=defaults.workers, help="server processes")
    p.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        help="most images in one model call; concurrent requests are merged up to this "
        "(1: one call per request)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=defaults.request_timeout_seconds,
        help="seconds a client has to send a whole request (headers and body) before its "
        f"connection is closed; idle keep-alive connections close after "
        f"{defaults.keep_alive_seconds} s",
    )
    _model_option(p)
    _engine_option(p)


def _serve(args: argparse.Namespace) -> int:
    config = ServeConfig(
        run=str(args.run.resolve()),
        model=args.model,
        engine=args.engine,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_batch=args.max_batch,
        request_timeout_seconds=args.request_timeout,
    )
    from mnistlab.server import serve

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
    p.add_argument("--out", type=Path, default=Path("compare.html"), help="HTML page to write")


def _compare(args: argparse.Namespace) -> int:
    for run_dir in args.runs:
        runs.require_finished(run_dir)
    digits = load_digits_set(args.data)
    from mnistlab.evaluate import compare_runs

    rows, page = compare_runs(args.runs, digits)
    _print_table(list(rows[0]), [list(row.values()) for row in rows])
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
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="finished run folders")
    p.add_argument("--out", type=Path, required=True, help="the ensemble's run folder")
    _model_option(p)
    _data_option(p, "mnist.npz or a folder of the four IDX files, for the test accuracy")


def _ensemble(args: argparse.Namespace) -> int:
    config = EnsembleConfig(members=tuple(str(r) for r in args.runs), model=args.model)
    for run_dir in args.runs:
        runs.require_finished(run_dir)
    data = load_mnist(args.data)
    from mnistlab.ensemble import make_ensemble

    metrics = make_ensemble(config, data, args.out)
    members = " ".join(f"{a:.4f}" for a in metrics["member_test_accuracy"])
    print(f"members: {members}")
    print(
        f"test_accuracy={metrics['test_accuracy']:.4f} "
        f"test_loss={metrics['test_loss']:.4f} run={args.out}"
    )
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
    p.add_argument("run", type=Path, help="finished run folder")
    p.add_argument("--format", default=EXPORT_FORMATS[0], choices=EXPORT_FORMATS)
    p.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="int8: dynamic quantization; int8-static: activations too, calibrated on 1,000 "
        "training images (ONNX only)",
    )
    p.add_argument("--out", type=Path, help="file to write (default: RUN/exports/<model>.<format>)")
    _model_option(p)
    _data_option(p, "mnist.npz or a folder of the four IDX files, for the check")


def _export(args: argparse.Namespace) -> int:
    config = ExportConfig(
        run=str(args.run),
        format=args.format,
        model=args.model,
        quantize=args.quantize,
        out=str(args.out) if args.out else None,
    )
    runs.require_finished(args.run)
    data = load_mnist(args.data)
    from mnistlab.export import export_run

    record = export_run(config, data)
    print(f"wrote {record['path']} ({record['bytes'] / 1e6:.2f} MB)")
    print(
        f"max |p_export - p_keras| = {record['max_abs_difference']:.2e}; test accuracy: "
        f"keras {record['keras_accuracy']:.4f}, {config.format} {record['export_accuracy']:.4f}"
    )
    if "int8" in record:
        q = record["int8"]
        change = (q["accuracy"] - record["keras_accuracy"]) * 100
        print(
            f"wrote {q['path']} ({q['bytes'] / 1e6:.2f} MB, {q['size_ratio']:.2f}x smaller); "
            f"test accuracy {q['accuracy']:.4f} ({change:+.2f} points)"
        )
    return 0


def _add_runs(commands) -> None:
    p = _command(commands, "runs", "list finished runs, newest first", _list_runs)
    p.add_argument("--root", type=Path, default=runs.DEFAULT_ROOT, help="folder of runs")


def _list_runs(args: argparse.Namespace) -> int:
    rows = []
    for run_dir in runs.finished_runs(args.root):
        try:
            record, metrics = runs.read_config(run_dir), runs.read_metrics(run_dir)
        except runs.RunError as e:  # one damaged run must not hide the others
            print(f"mnistlab: warning: skipped {e}", file=sys.stderr)
            continue
        rows.append(
            [
                run_dir.name,
                record["config"]["preset"],
                f"{metrics['test_accuracy']:.4f}",
                record.get("created", "?"),
            ]
        )
    if not rows:
        print(f"no finished runs in {args.root}")
        return 0
    _print_table(["run", "preset", "test_accuracy", "created"], rows)
    return 0


def _add_show_data(commands) -> None:
    p = _command(
        commands,
        "show-data",
        "print the data set's shapes and class counts; draw its first 25 images",
        _show_data,
    )
    _data_option(p, "mnist.npz or a folder of the four IDX files")
    p.add_argument("--out", type=Path, default=Path("mnist-samples.png"), help="PNG grid to write")
    p.add_argument(
        "--augment", action="store_true", help="draw the images as training augments them"
    )
    p.add_argument("--seed", type=int, default=0, help="augmentation seed")


def _show_data(args: argparse.Namespace) -> int:
    data = load_mnist(args.data)
    from mnistlab import plots

    print(f"data: {data.source} (sha256 {data.sha256[:12]}...)")
    header = ["split", "images", "labels", "dtype", *map(str, range(NUM_CLASSES))]
    rows = [
        [split, str(x.shape), str(y.shape), str(x.dtype), *np.bincount(y, minlength=NUM_CLASSES)]
        for split, x, y in [
            ("train", data.x_train, data.y_train),
            ("test", data.x_test, data.y_test),
        ]
    ]
    _print_table(header, rows)
    images, title = data.x_train[:25], "First 25 training images"
    if args.augment:
        from mnistlab.augment import augment_batch

        distorted = augment_batch(images / 255.0, np.random.default_rng(args.seed))
        images = (distorted * 255).astype(np.uint8)
        title += f", augmented (seed {args.seed})"
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
    if args.run is not None:
        runs.require_finished(args.run)
    from mnistlab.models import build_model, layer_table
    from mnistlab.predict import Predictor

    if args.run is not None:
        model = Predictor.from_run(args.run).model
    else:
        model = build_model(preset_config(args.preset))
    rows = layer_table(model)
    table = [[name, kind, shape, f"{params:,}"] for name, kind, shape, params in rows]
    _print_table(["layer", "type", "output shape", "parameters"], table)
    print(f"total parameters: {sum(r[3] for r in rows):,}")
    return 0


def _print_table(header: list[str], rows: list[list]) -> None:
    """Columns padded to their widest cell; numbers right-aligned."""
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

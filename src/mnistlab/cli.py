"""The `mnistlab` command: parse options, build a config, make one library call, print.

Keras is imported only inside the commands that need it, so `mnistlab --help` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mnistlab import __version__, runs
from mnistlab.config import PRESETS, ConfigError, TrainConfig, preset_config
from mnistlab.data import ENV_VAR, DataError, load_mnist

DEFAULT_BACKEND = "jax"
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Keras reads its backend once, when first imported; JAX unless the user chose.
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    try:
        return args.handler(args)
    except (ConfigError, DataError, runs.RunError) as e:
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mnistlab: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnistlab",
        description="Train, evaluate and serve MNIST digit models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _add_train(commands)
    return parser


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
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"mnist.npz or a folder of the IDX files (default: ${ENV_VAR}, else Keras' download)",
    )
    p.add_argument("--epochs", type=int, help=f"most epochs ({defaults.epochs})")
    p.add_argument("--batch-size", type=int, help=f"batch size ({defaults.batch_size})")
    p.add_argument(
        "--learning-rate", type=float, help=f"Adam learning rate ({defaults.learning_rate})"
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
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    config = preset_config(
        args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        validation_split=args.validation_split,
        patience=args.patience,
        seed=args.seed,
        limit=args.limit,
        save_h5=args.h5 or None,
    )
    # Load and check the data before any run folder exists, so bad data leaves nothing.
    data = load_mnist(args.data)
    run_dir = args.run_dir or runs.new_run_dir(runs.DEFAULT_ROOT, config.preset)
    if (run_dir / runs.CONFIG).is_file() and not runs.is_finished(run_dir):
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

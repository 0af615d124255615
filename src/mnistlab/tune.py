"""Hyperparameter search with Optuna over a preset's TrainConfig.

A study lives in an Optuna storage (SQLite in the study folder by default, or any
SQLAlchemy URL such as PostgreSQL, so that workers on several machines share it). Trials
are judged on validation accuracy only; the test set is never seen while searching.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import multiprocessing
import os
import socket
import statistics
import time
import typing
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy.exc

from mnistlab import backend, plots, runs
from mnistlab.config import PRESETS, TrainConfig, TuneConfig
from mnistlab.data import Mnist
from mnistlab.errors import UserError, first_line
from mnistlab.evaluation import compare_runs
from mnistlab.training import fit_and_validate, train

STUDIES = "studies"
STUDY_DB = "study.db"
STUDY_JSON = "study.json"
COMPARE_HTML = "compare.html"
# A worker beats every HEARTBEAT seconds; a RUNNING trial silent for GRACE is failed.
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
BASE_ATTR = "base_config"
FIGURE_INCHES = (10, 6)
OPEN_ATTEMPTS = 3

# Worker processes by default (at most one per core): while one compiles a new trial's
# programs or prepares it, on one core, the other trains (README: 2x the trials on 2 cores).
AUTO_JOBS = 2

SPACE_ATTR = "space"
TENSORBOARD = "tensorboard"
MAX_LAYERS = 4


@dataclasses.dataclass(frozen=True)
class Space:
    """What a study searches: 1 to MAX_LAYERS hidden layers, and these ranges."""

    units: tuple[int, int, int]  # low, high, step
    dropout: tuple[float, float, float]
    l2: tuple[float, ...]
    optimizers: tuple[str, ...]
    learning_rate: tuple[float, float]  # log-uniform
    batch_sizes: tuple[int, ...] = (64, 128, 256)


SPACES = {
    # No hopeless region: every point trains to well above chance (the seed's space lost
    # trials to plain SGD and to L2 0.1 and 1.0, which score below it). Measured in the
    # README: better models in the same time.
    "default": Space(
        units=(64, 512, 64), dropout=(0.1, 0.5, 0.1), l2=(0.0, 1e-5, 1e-4),
        optimizers=("adam", "rmsprop"), learning_rate=(3e-4, 3e-3),
    ),
    # The seed's: the published Keras Tuner notebook's space, extended.
    "seed": Space(
        units=(32, 512, 32), dropout=(0.1, 0.5, 0.1), l2=(0.0, 0.01, 0.1, 1.0),
        optimizers=("adam", "sgd", "rmsprop"), learning_rate=(1e-4, 3e-3),
    ),
}  # fmt: skip
# The grid sampler cannot walk the whole space; it walks this small one instead.
GRID = {
    "n_layers": [1, 2, 3],
    "units_0": [128, 256, 512],
    "units_1": [128, 256],
    "units_2": [128],
    "dropout_0": [0.2, 0.3],
    "dropout_1": [0.3],
    "dropout_2": [0.3],
    "l2_0": [0.0],
    "l2_1": [0.0],
    "l2_2": [0.0],
    "optimizer": ["adam"],
    "learning_rate": [1e-3],
    "batch_size": [128],
}


class TuneError(UserError, RuntimeError):
    """The study cannot be opened or answered as asked; the message says why."""


def study_dir(root: Path, name: str) -> Path:
    return Path(root) / STUDIES / name


def storage_url(name: str, storage: str | None, root: Path) -> str:
    """The study's storage: the URL given, else its SQLite file in the study folder."""
    return storage or f"sqlite:///{study_dir(root, name) / STUDY_DB}"


def suggest_config(trial: optuna.Trial, base: TrainConfig, space: str = "default") -> TrainConfig:
    """The base config with every searched field drawn from the trial."""
    s = SPACES[space]
    n_layers = trial.suggest_int("n_layers", 1, MAX_LAYERS)
    layers = range(n_layers)
    units = tuple(trial.suggest_int(f"units_{i}", *s.units[:2], step=s.units[2]) for i in layers)
    dropout = tuple(
        round(trial.suggest_float(f"dropout_{i}", *s.dropout[:2], step=s.dropout[2]), 2)
        for i in layers
    )
    l2 = tuple(float(trial.suggest_categorical(f"l2_{i}", s.l2)) for i in layers)
    return dataclasses.replace(
        base,
        preset=f"{base.preset}-tuned",
        hidden_units=units,
        dropout=dropout,
        l2=l2,
        optimizer=trial.suggest_categorical("optimizer", s.optimizers),
        learning_rate=trial.suggest_float("learning_rate", *s.learning_rate, log=True),
        batch_size=int(trial.suggest_categorical("batch_size", s.batch_sizes)),
    )


def config_from_params(
    params: dict[str, typing.Any], base: TrainConfig, space: str = "default"
) -> TrainConfig:
    """Rebuild a trial's TrainConfig from its stored parameters."""
    return suggest_config(optuna.trial.FixedTrial(params), base, space)


def base_config(config: TuneConfig) -> TrainConfig:
    """The preset the study searches around, trained as the search trains."""
    return dataclasses.replace(PRESETS[config.preset], epochs=config.epochs, limit=config.limit)


@dataclasses.dataclass(frozen=True)
class Search:
    """What `mnistlab tune` did: the study, the folder of its records, and (unless only
    searching) the best configuration trained and compared with the preset's run."""

    study: optuna.Study
    folder: Path
    record: dict[str, typing.Any]
    tuned: runs.Run | None = None
    reference: runs.Run | None = None
    comparison: list[dict[str, typing.Any]] = dataclasses.field(default_factory=list)


def search(
    config: TuneConfig,
    data: Mnist,
    root: Path,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    progress: bool = True,
    retrain: bool = True,
) -> Search:
    """Run the study; write study.json and its figures; with `retrain`, train its best
    configuration and compare it (compare.html) with the preset trained alike, reusing a
    run of that under `root` if there is one. Only the comparison sees the test set."""
    study = run_study(config, data, root, on_trial, progress)
    folder = study_dir(root, config.study)
    folder.mkdir(parents=True, exist_ok=True)
    record = study_record(study, config)
    runs.write_json(folder / STUDY_JSON, record)
    for name, png in study_figures(study).items():
        runs.write_bytes(folder / f"{name}.png", png)
    if not retrain:
        return Search(study, folder, record)
    tuned = train(best_config(study), data, runs.new_run_dir(root, f"{config.preset}-tuned"), 0)
    reference_config = base_config(config)
    reference = runs.find_run(root, reference_config, data.sha256) or train(
        reference_config, data, runs.new_run_dir(root, config.preset), 0
    )
    rows, page = compare_runs([reference, tuned], data.test)
    runs.write_bytes(folder / COMPARE_HTML, page.encode())
    return Search(study, folder, record, tuned, reference, rows)


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    """One line about a finished trial, as `mnistlab tune` prints it."""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    seconds = trial.user_attrs.get("seconds") or 0.0
    return (
        f"trial {trial.number} {trial.state.name.lower()}: val_accuracy={value} "
        f"epochs={(trial.last_step or 0) + 1} {seconds:.1f}s {format_params(trial.params)}"
    )


def format_params(params: dict[str, typing.Any]) -> str:
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def top_trials(record: dict[str, typing.Any], n: int) -> list[dict[str, typing.Any]]:
    """The `n` completed trials of a study record with the highest val_accuracy."""
    completed = [t for t in record["trials"] if t["state"] == "COMPLETE"]
    return sorted(completed, key=lambda t: t["value"], reverse=True)[:n]


def open_study(config: TuneConfig, root: Path) -> optuna.Study:
    """Create the study, or load it to resume or to join other workers."""
    url = storage_url(config.study, config.storage, root)
    if config.storage is None:
        study_dir(root, config.study).mkdir(parents=True, exist_ok=True)
    with _storage_errors(url):
        for attempt in range(OPEN_ATTEMPTS - 1):
            try:
                return _open_study(config, url)
            except (
                sqlalchemy.exc.IntegrityError,
                sqlalchemy.exc.OperationalError,
                sqlalchemy.exc.ProgrammingError,
            ) as e:
                # Workers started together race to create Optuna's tables in an empty
                # database (PostgreSQL: IntegrityError, or DuplicateTable 'relation
                # "alembic_version" already exists'; SQLite: "table ... already
                # exists"); the loser finds them made on its next try.
                race = isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)
                if not race:
                    raise
                time.sleep(1 + attempt)
        return _open_study(config, url)


def _open_study(config: TuneConfig, url: str) -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
        )
    study = optuna.create_study(
        study_name=config.study,
        storage=storage,
        sampler=_sampler(config),
        pruner=_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )
    # A study's trials are drawn from one space: resuming it with another would mix them.
    attrs = study.user_attrs  # a study made before there were spaces searched the seed's
    space = attrs.get(SPACE_ATTR, "seed" if BASE_ATTR in attrs else config.space)
    if space != config.space:
        raise TuneError(
            f"study {config.study!r} searches the {space!r} space; resume it with "
            f"--space {space}, or start another --study"
        )
    study.set_user_attr(SPACE_ATTR, config.space)
    if config.seed is not None and study.trials:
        # A resumed study's sampler, seeded as a new one, would draw its first trials again.
        study.sampler = _sampler(config, resumed_at=len(study.trials))
    # What the trials' parameters are relative to, for `train --from-study`.
    study.set_user_attr(BASE_ATTR, dataclasses.asdict(base_config(config)))
    return study


def load_study(name: str, storage: str | None, root: Path) -> optuna.Study:
    """An existing study, for reading; a clear error if there is none."""
    url = storage_url(name, storage, root)
    if storage is None and not (study_dir(root, name) / STUDY_DB).is_file():
        raise TuneError(f"no study {name!r} in {study_dir(root, name)}")
    with _storage_errors(url):
        try:
            return optuna.load_study(study_name=name, storage=url)
        except KeyError as e:
            raise TuneError(f"no study {name!r} in {url}") from e


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError as e:
        raise TuneError(f"study {study.study_name!r} has no completed trial yet") from e


def best_config(study: optuna.Study) -> TrainConfig:
    """The TrainConfig of the study's best trial, on the base it searched around."""
    base = TrainConfig.from_dict(study.user_attrs[BASE_ATTR])
    space = study.user_attrs.get(SPACE_ATTR, "seed")  # made before there were spaces
    return config_from_params(best_trial(study).params, base, space)


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials of workers on this machine whose process is gone, and trials
    whose worker died before recording itself.

    Heartbeats catch dead workers anywhere, but only after the grace period; a worker
    restarted on the same machine knows at once which trials lost their process.
    """
    failed = []
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs
        if "host" in owner:
            dead = owner["host"] == socket.gethostname() and not runs.alive(owner.get("pid", -1))
        else:
            # A live worker records itself within milliseconds of making the trial; killed
            # before that, it leaves a trial with no owner and, maybe, no heartbeat, which
            # would hold a place in the study for good.
            age = now - (trial.datetime_start or now)
            dead = age.total_seconds() > GRACE_SECONDS
        if dead:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


class SurplusTrial(Exception):
    """Raised by a trial that a worker started when the study already had enough."""


def _claimed(study: optuna.Study, before: int | None = None) -> int:
    """Finished and running trials (numbered below `before`): the slots already taken."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, optuna.trial.TrialState.RUNNING))
    return sum(1 for t in trials if before is None or t.number < before)


def objective(
    config: TuneConfig, data: Mnist, folder: Path | None = None
) -> Callable[[optuna.Trial], float]:
    """Mean over `repeats` trainings of the best validation accuracy; pruned on the way.
    Each finished trial goes to TensorBoard's HParams dashboard under `folder`."""
    base = base_config(config)

    def run_trial(trial: optuna.Trial) -> float:
        # The pid first: a worker that sees this host on a trial must also see its pid,
        # or it would take the trial for a dead one's (fail_dead_local_trials).
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        # Two workers can start the last trial at once; the later-numbered one stands down.
        if _claimed(study=trial.study, before=trial.number) >= config.trials:
            raise SurplusTrial(f"trial {trial.number}: the study has its {config.trials} trials")
        start = time.perf_counter()
        train_config = suggest_config(trial, base, config.space)
        trainings: list[list[dict]] = []  # each training's epoch logs, so far
        try:
            for repeat in range(config.repeats):
                offset = repeat * config.epochs
                epochs: list[dict] = []
                trainings.append(epochs)

                def report(epoch: int, logs: dict, offset: int = offset, epochs=epochs) -> None:
                    epochs.append(dict(logs))
                    trial.report(float(logs["val_accuracy"]), offset + epoch)
                    if trial.should_prune():
                        trial.set_user_attr("seconds", time.perf_counter() - start)
                        raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")

                seed = (config.seed or 0) + repeat
                fit_and_validate(dataclasses.replace(train_config, seed=seed), data, report)
        except optuna.TrialPruned:
            if folder is not None:
                log_hparams(folder, trial.number, trial.params, trainings)
            raise
        trial.set_user_attr("seconds", time.perf_counter() - start)
        if folder is not None:
            log_hparams(folder, trial.number, trial.params, trainings)
        return statistics.mean(max(e["val_accuracy"] for e in epochs) for epochs in trainings)

    return run_trial


def log_hparams(
    folder: Path, number: int, params: dict[str, typing.Any], trainings: list[list[dict]]
) -> None:
    """One trial in TensorBoard's HParams dashboard (`tensorboard --logdir
    <study>/tensorboard`): its parameters, and its val_accuracy and val_loss (the mean
    over its trainings of the best of each), as Keras Tuner users see theirs."""
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    trainings = [epochs for epochs in trainings if epochs]
    if not trainings:
        return
    metrics = {
        "val_accuracy": statistics.mean(max(e["val_accuracy"] for e in t) for t in trainings),
        "val_loss": statistics.mean(min(e["val_loss"] for e in t) for t in trainings),
    }
    # Every trial names every parameter (a layer it does not have: 0), so that the
    # dashboard's columns are the same for all.
    absent = {f"{name}_{i}": 0 for i in range(MAX_LAYERS) for name in ("units", "dropout", "l2")}
    experiment, start, end = hparams({**absent, **params}, metrics)
    with SummaryWriter(str(folder / TENSORBOARD / f"trial-{number:04d}")) as writer:
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)
        for name, value in metrics.items():
            writer.add_scalar(name, value)


def run_study(
    config: TuneConfig,
    data: Mnist,
    root: Path,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    progress: bool = True,
) -> optuna.Study:
    """Run trials until the study holds `config.trials` finished ones (or the timeout),
    here and in the other `local_jobs` worker processes, which end with this one.

    However many workers share the study, it ends with exactly that many: a worker starts
    a trial only while finished and running ones are fewer. Should two start the last
    one at the same moment, the later is recorded as FAIL (SurplusTrial) and not counted.
    """
    study = open_study(config, root)  # before the helpers: one process makes the tables
    deadline = None if config.timeout is None else time.time() + config.timeout
    helpers = min(local_jobs(config), config.trials - _claimed(study)) - 1
    with _helpers(helpers, config, data, root, on_trial, deadline):
        _optimize(study, config, data, root, on_trial, progress, deadline)
    return study


def local_jobs(config: TuneConfig) -> int:
    """Worker processes for this machine: as asked, else AUTO_JOBS if it has the cores."""
    if config.jobs is not None:
        return config.jobs
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(AUTO_JOBS, cores or 1)


def _optimize(
    study: optuna.Study,
    config: TuneConfig,
    data: Mnist,
    root: Path,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None,
    progress: bool,
    deadline: float | None,
    parent: int | None = None,
) -> None:
    """One worker's trials, until the study is full, the deadline, or (for a helper) its
    parent is gone: a killed `mnistlab tune` leaves no worker behind."""
    from tqdm import tqdm

    run_trial = objective(config, data, study_dir(root, config.study))
    callbacks = [on_trial] if on_trial else []
    with tqdm(total=config.trials, disable=not progress, unit="trial") as bar:
        while True:
            fail_dead_local_trials(study)  # their slots are free again
            bar.update(finished_count(study) - bar.n)
            if _claimed(study) >= config.trials:
                return
            if deadline is not None and time.time() >= deadline:
                return
            if parent is not None and os.getppid() != parent:
                return
            study.optimize(run_trial, n_trials=1, callbacks=callbacks, catch=(SurplusTrial,))


@contextlib.contextmanager
def _helpers(
    count: int,
    config: TuneConfig,
    data: Mnist,
    root: Path,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None,
    deadline: float | None,
):
    """`count` more workers on the study while the caller works; waited for at the end
    (their last trials finish), stopped at once if the caller fails or is interrupted."""
    spawn = multiprocessing.get_context("spawn")  # forking would copy JAX's threads' locks
    helpers = []
    for i in range(1, count + 1):
        seed = None if config.seed is None else config.seed + i  # explore differently
        helper_config = dataclasses.replace(config, seed=seed, jobs=1)
        args = (helper_config, data, root, on_trial, deadline, os.getpid())
        helpers.append(spawn.Process(target=_help, args=args, name=f"tune-worker-{i}"))
    for helper in helpers:
        helper.start()
    try:
        yield
    except BaseException:
        for helper in helpers:
            helper.terminate()  # its running trial is failed when the study is next opened
        raise
    finally:
        for helper in helpers:
            helper.join()
    for helper in helpers:
        if helper.exitcode:
            warnings.warn(
                f"tune worker {helper.name} ended with exit code {helper.exitcode}; the "
                "study keeps its finished trials", stacklevel=3,
            )  # fmt: skip


def _help(
    config: TuneConfig,
    data: Mnist,
    root: Path,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None,
    deadline: float | None,
    parent: int,
) -> None:
    """A helper worker's process (started by spawn: Keras' backend comes from the
    environment its parent set)."""
    backend.quiet_cache_warnings()
    try:
        study = open_study(config, root)
        _optimize(study, config, data, root, on_trial, False, deadline, parent)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole group; the parent says so once
        pass


def study_record(study: optuna.Study, config: TuneConfig) -> dict[str, typing.Any]:
    """Everything about the study for study.json: its settings and every trial."""
    return {
        "config": config.to_dict(),
        "direction": "maximize val_accuracy",
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "seconds": t.user_attrs.get("seconds"),
                "last_epoch": t.last_step,
            }
            for t in study.get_trials(deepcopy=False)
        ],
    }


def study_figures(study: optuna.Study) -> dict[str, bytes]:
    """Optuna's matplotlib plots that the study has enough trials for, as PNG bytes."""
    import matplotlib.pyplot as plt  # Optuna's plots draw with pyplot.
    from optuna.visualization import matplotlib as ov

    plots_to_draw = {
        "optimization_history": ov.plot_optimization_history,
        "param_importances": ov.plot_param_importances,
        "parallel_coordinate": ov.plot_parallel_coordinate,
    }
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks these plots experimental.
        for name, plot in plots_to_draw.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError):  # e.g. importances need 2+ completed trials
                continue
            figure = axes.figure
            figure.set_size_inches(*FIGURE_INCHES)
            figure.tight_layout()
            figures[name] = plots.to_png(figure)
            plt.close(figure)
    return figures


def _sampler(config: TuneConfig, resumed_at: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler, seeded from the seed and the number of trials the study already has."""
    seed = config.seed
    if seed is not None and resumed_at:
        seed = int(np.random.SeedSequence([seed, resumed_at]).generate_state(1)[0])
    if config.sampler == "tpe":
        # constant_liar: parallel workers treat each other's running trials as poor, so
        # they do not all try the same promising point.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "grid":
        return optuna.samplers.GridSampler(GRID, seed=seed)
    try:
        import torch  # noqa: F401  (Optuna's GP sampler runs on PyTorch)
    except ImportError as e:
        raise TuneError("the gp sampler needs PyTorch: pip install torch") from e
    return optuna.samplers.GPSampler(seed=seed)


def _pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        # Judge nobody before 5 trials and 2 epochs of evidence.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    return optuna.pruners.NopPruner()


@contextlib.contextmanager
def _storage_errors(url: str):
    """Storage failures a user can fix, as one-line TuneErrors."""
    try:
        yield
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as e:
        raise TuneError(f"malformed storage URL {url!r}: {first_line(e)}") from e
    except sqlalchemy.exc.OperationalError as e:
        raise TuneError(f"cannot reach the storage {url!r}: {first_line(e)}") from e
    except ImportError as e:
        raise TuneError(f"the storage {url!r} needs a driver that is not installed: {e}") from e

"""An Optuna study: opened (or joined) in its storage, its records, samplers and pruners,
and the trials of workers that died failed so that their places are free again.

A study lives in an Optuna storage (SQLite in the study folder by default, or any
SQLAlchemy URL such as PostgreSQL, so that workers on several machines share it)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import socket
import time
import typing
import warnings
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy.exc

from mnistlab import runs
from mnistlab.config import TrainConfig, TuneConfig
from mnistlab.errors import UserError, first_line
from mnistlab.report import plots
from mnistlab.tune.space import GRID, base_config, config_from_params

STUDIES = "studies"
STUDY_DB = "study.db"
STUDY_JSON = "study.json"
COMPARE_HTML = "compare.html"
# A worker beats every HEARTBEAT seconds; a RUNNING trial silent for GRACE is failed.
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
BASE_ATTR = "base_config"

SPACE_ATTR = "space"
FIGURE_INCHES = (10, 6)
OPEN_ATTEMPTS = 3
SQLITE_WAIT_SECONDS = 60


class TuneError(UserError, RuntimeError):
    """The study cannot be opened or answered as asked; the message says why."""


def study_dir(root: Path, name: str) -> Path:
    return Path(root) / STUDIES / name


def storage_url(name: str, storage: str | None, root: Path) -> str:
    """The study's storage: the URL given, else its SQLite file in the study folder."""
    return storage or f"sqlite:///{study_dir(root, name) / STUDY_DB}"


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
            url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
            engine_kwargs=_engine_kwargs(url),
        )  # fmt: skip
    study = optuna.create_study(
        study_name=config.study,
        storage=storage,
        sampler=_sampler(config),
        pruner=_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )
    # A study's trials are drawn from one space: resuming it with another would mix them.
    attrs = study.user_attrs  # a study that records no space searched the seed's
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


def _engine_kwargs(url: str) -> dict[str, typing.Any]:
    """SQLite: wait up to SQLITE_WAIT_SECONDS for another connection's lock (the other
    workers', a reader's) rather than sqlite3's 5 s, past which a worker died mid-trial."""
    if url.startswith("sqlite:"):
        return {"connect_args": {"timeout": SQLITE_WAIT_SECONDS}}
    return {}


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
    space = study.user_attrs.get(SPACE_ATTR, "seed")  # one that records none searched it
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

"""The search: worker processes that run a study's trials (judged on validation accuracy
only; the test set is never seen while searching), then the best configuration trained
and compared with the preset's run."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import socket
import statistics
import time
import typing
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

from mnistlab import backend, runs
from mnistlab.config import TuneConfig
from mnistlab.data import Mnist
from mnistlab.report import compare_runs
from mnistlab.training import fit_and_validate, train
from mnistlab.tune.hparams import log_hparams
from mnistlab.tune.space import base_config, suggest_config
from mnistlab.tune.study import (
    COMPARE_HTML,
    FINISHED,
    GRACE_SECONDS,
    STUDY_JSON,
    best_config,
    fail_dead_local_trials,
    finished_count,
    open_study,
    study_dir,
    study_figures,
    study_record,
)

# Worker processes by default (at most one per core): while one compiles a new trial's
# programs or prepares it, on one core, the other trains: 2x the trials on 2 cores
# (benchmarks/tune_speed.py).
AUTO_JOBS = 2


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
    _quiet_optuna(on_trial)
    study = open_study(config, root)  # before the helpers: one process makes the tables
    deadline = None if config.timeout is None else time.time() + config.timeout
    helpers = min(local_jobs(config), config.trials - _claimed(study)) - 1
    with _helpers(helpers, config, data, root, on_trial, deadline):
        _optimize(study, config, data, root, on_trial, progress, deadline)
    return study


def _quiet_optuna(on_trial: Callable | None) -> None:
    """A caller that prints each trial itself gets no second line for it from Optuna's
    log (its warnings stay)."""
    if on_trial is not None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


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
    lost: list[int] = []  # a trial of this worker's that another worker failed meanwhile

    def run(trial: optuna.Trial) -> float:
        try:
            return run_trial(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            lost.append(trial.number)  # _stand_down says why, without Optuna's traceback
            return math.nan

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
            try:
                study.optimize(run, n_trials=1, callbacks=callbacks, catch=(SurplusTrial,))
            except Exception:  # Optuna's own, on telling the result of a trial already failed
                if not lost:
                    raise
                _stand_down(study, lost.pop(), on_trial)


def _stand_down(
    study: optuna.Study,
    number: int,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None,
) -> None:
    """Another worker failed this worker's trial: it sent no heartbeat for GRACE_SECONDS
    (stopped, suspended with its laptop, or its machine paused), so its place went to a
    new trial. Say so, print it as failed, and go on with the search."""
    warnings.warn(
        f"trial {number} was failed by another worker while this one sent no heartbeat "
        f"for {GRACE_SECONDS} s (stopped or suspended); its result is dropped", stacklevel=2,
    )  # fmt: skip
    if on_trial:
        on_trial(study, study.get_trials(deepcopy=False)[number])


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
    _quiet_optuna(on_trial)
    try:
        study = open_study(config, root)
        _optimize(study, config, data, root, on_trial, False, deadline, parent)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole group; the parent says so once
        pass

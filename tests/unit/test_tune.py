"""The search space, the objective's pruning, and dead-worker detection, without training."""

import dataclasses
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest

from mnistlab import tune
from mnistlab.config import PRESETS, ConfigError, TuneConfig
from mnistlab.tune import study as tune_study
from mnistlab.tune import workers as tune_workers

BASE = PRESETS["deep-mlp"]


SEEDS_SPACE = {"units": (32, 32), "l2": {0.0, 0.01, 0.1, 1.0}, "lr": (1e-4, 3e-3),
               "optimizers": {"adam", "sgd", "rmsprop"}}  # fmt: skip
DEFAULT_SPACE = {"units": (64, 64), "l2": {0.0, 1e-5, 1e-4}, "lr": (3e-4, 3e-3),
                 "optimizers": {"adam", "rmsprop"}}  # fmt: skip


@pytest.mark.parametrize(("space", "bounds"), [("seed", SEEDS_SPACE), ("default", DEFAULT_SPACE)])
def test_search_space_stays_in_its_bounds(space, bounds):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    layer_counts, optimizers = set(), set()
    for _ in range(200):
        config = tune.suggest_config(study.ask(), BASE, space)
        n = len(config.hidden_units)
        layer_counts.add(n)
        optimizers.add(config.optimizer)
        assert 1 <= n <= 4
        low, step = bounds["units"]
        assert all(low <= u <= 512 and u % step == 0 for u in config.hidden_units)
        assert all(d in (0.1, 0.2, 0.3, 0.4, 0.5) for d in config.dropout)
        assert all(v in bounds["l2"] for v in config.l2)
        assert len(config.dropout) == len(config.l2) == n
        assert bounds["lr"][0] <= config.learning_rate <= bounds["lr"][1]
        assert config.batch_size in (64, 128, 256)
        assert config.preset == "deep-mlp-tuned"
    assert layer_counts == {1, 2, 3, 4}
    assert optimizers == bounds["optimizers"]


def test_every_space_named_on_the_command_line_exists():
    from mnistlab.config import SPACES

    assert tuple(tune.SPACES) == SPACES


@pytest.mark.parametrize("space", ["seed", "default"])
def test_a_trials_params_rebuild_its_config(space):
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    suggested = tune.suggest_config(trial, BASE, space)
    assert tune.config_from_params(trial.params, BASE, space) == suggested


def test_a_study_is_resumed_only_in_its_own_space(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    tune.open_study(TuneConfig(study="s", storage=url, space="seed"), tmp_path)
    with pytest.raises(tune.TuneError, match="searches the 'seed' space; resume it with --space"):
        tune.open_study(TuneConfig(study="s", storage=url), tmp_path)
    assert tune.open_study(TuneConfig(study="s", storage=url, space="seed"), tmp_path)


def scripted_fit(curves):
    """A stand-in for fit_and_validate that replays scripted val_accuracy per epoch."""
    calls = []

    def fake(config, data, on_epoch_end):
        curve = curves[len(calls)]
        calls.append(config.seed)
        history = []
        for epoch, value in enumerate(curve):
            history.append({"val_accuracy": value, "val_loss": 1 - value})
            on_epoch_end(epoch, history[-1])
        return history

    return fake, calls


def study_with_good_trials(config):
    study = optuna.create_study(direction="maximize", pruner=tune_study._pruner(config))
    for _ in range(5):  # the median pruner's startup trials
        study.add_trial(
            optuna.trial.create_trial(
                value=0.9, intermediate_values={e: 0.9 for e in range(config.epochs)}
            )
        )
    return study


def test_a_poor_trial_is_pruned_at_the_first_epoch_after_warm_up(monkeypatch):
    config = TuneConfig(epochs=6)
    fake, _ = scripted_fit([[0.1] * 6])
    monkeypatch.setattr(tune_workers, "fit_and_validate", fake)
    study = study_with_good_trials(config)
    study.optimize(tune_workers.objective(config, data=None), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    # Warm-up is 2 steps: epochs 1 and 2 are only reported, epoch 3 (step 2) prunes.
    assert sorted(trial.intermediate_values) == [0, 1, 2]


def test_a_good_trial_runs_every_repeat_and_scores_their_mean(monkeypatch):
    config = TuneConfig(epochs=3, repeats=2, seed=10)
    fake, calls = scripted_fit([[0.91, 0.95, 0.93], [0.92, 0.97, 0.96]])
    monkeypatch.setattr(tune_workers, "fit_and_validate", fake)
    study = study_with_good_trials(config)
    study.optimize(tune_workers.objective(config, data=None), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == pytest.approx((0.95 + 0.97) / 2)  # mean of each repeat's best
    assert calls == [10, 11]  # one seed per repeat
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3, 4, 5]  # repeats don't overlap
    assert trial.user_attrs["pid"] == os.getpid()


def test_running_trials_of_dead_local_workers_are_failed(tmp_path):
    config = TuneConfig(study="dead", storage=f"sqlite:///{tmp_path / 's.db'}")
    study = tune.open_study(config, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    orphan, alive, remote = study.ask(), study.ask(), study.ask()
    for trial, host, pid in [(orphan, socket.gethostname(), int(dead)),
                             (alive, socket.gethostname(), os.getpid()),
                             (remote, "another-machine", int(dead))]:  # fmt: skip
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
    assert tune_study.fail_dead_local_trials(study) == [orphan.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    # The other machine's trial is left to its heartbeat.
    assert states == {orphan.number: "FAIL", alive.number: "RUNNING", remote.number: "RUNNING"}


def test_a_trial_of_an_exited_but_unreaped_worker_is_failed_at_once(tmp_path):
    """A helper killed mid-run stays a zombie until `mnistlab tune` joins it at the end:
    its pid still answers kill(pid, 0), so its trial held a place until the heartbeat's
    grace period ran out."""
    config = TuneConfig(study="zombie", storage=f"sqlite:///{tmp_path / 's.db'}")
    study = tune.open_study(config, tmp_path)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    trial = study.ask()
    trial.set_user_attr("pid", worker.pid)
    trial.set_user_attr("host", socket.gethostname())
    try:
        worker.kill()
        os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
        assert tune_study.fail_dead_local_trials(study) == [trial.number]
    finally:
        worker.wait()


@pytest.mark.parametrize(
    ("change", "message"),
    [({"sampler": "bayes"}, "unknown sampler 'bayes'; choose from: tpe, random, gp, grid"),
     ({"pruner": "asha"}, "unknown pruner 'asha'; choose from: median, hyperband, none"),
     ({"trials": 0}, "trials must be > 0"), ({"study": " "}, "the study needs a name"),
     ({"jobs": 0}, "jobs must be > 0")],
)  # fmt: skip
def test_bad_tune_settings(change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TuneConfig(), **change)


def test_best_of_an_empty_study_is_a_clear_error(tmp_path):
    study = tune.open_study(TuneConfig(study="empty"), tmp_path)
    with pytest.raises(tune.TuneError, match="study 'empty' has no completed trial yet"):
        tune.best_config(study)


OPEN_TOGETHER = """
import sys, time
from pathlib import Path
from mnistlab import tune
from mnistlab.config import TuneConfig
start = float(sys.argv[2])
while time.time() < start:
    pass
tune.open_study(TuneConfig(study="together"), Path(sys.argv[1]))
"""


def test_workers_opening_a_new_sqlite_study_together_all_get_it(tmp_path):
    """SQLite's "table ... already exists" lost one of two workers in 4 of 8 tries."""
    for attempt in range(4):
        root = tmp_path / str(attempt)
        start = str(time.time() + 5)  # both past their imports, then both at once
        command = [sys.executable, "-c", OPEN_TOGETHER, str(root), start]
        workers = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for worker in workers:
            _, stderr = worker.communicate(timeout=120)
            assert worker.returncode == 0, stderr


def test_workers_sharing_a_study_end_with_exactly_the_trials_asked_for(tmp_path, monkeypatch):
    """Two workers used to finish with N + 1 trials: both started one when N - 1 were done."""

    def slow_fit(config, data, on_epoch_end):
        for epoch in range(3):
            time.sleep(0.05)
            on_epoch_end(epoch, {"val_accuracy": 0.5 + 0.1 * epoch, "val_loss": 1 - 0.1 * epoch})
        return [{"val_accuracy": 0.7}]

    monkeypatch.setattr(tune_workers, "fit_and_validate", slow_fit)
    config = TuneConfig(study="shared", trials=7, pruner="none", jobs=1,
                        storage=f"sqlite:///{tmp_path / 'shared.db'}")  # fmt: skip

    def worker(seed):
        return tune.run_study(dataclasses.replace(config, seed=seed), None, tmp_path, False)

    with ThreadPoolExecutor(3) as pool:
        studies = list(pool.map(worker, range(3)))
    trials = studies[0].get_trials()
    assert tune_study.finished_count(studies[0]) == config.trials
    # Any surplus start (two workers claiming the last slot at once) is a FAIL, not a result.
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)


@pytest.mark.parametrize("failed_after_epoch", [0, 2])
def test_a_worker_whose_trial_another_failed_prints_it_and_goes_on(
    tmp_path, monkeypatch, caplog, failed_after_epoch
):
    """A helper stopped past the grace period (a suspended laptop, a paused machine) has its
    trial failed by the other worker; on waking, Optuna could not record its result and
    the helper died, its trial unprinted. Mid-training, or after its last epoch."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = TuneConfig(study="woken", trials=2, pruner="none", jobs=1, storage=url)
    failed = []

    def fit_failed_by_another(config, data, on_epoch_end):
        for epoch in range(3):
            on_epoch_end(epoch, {"val_accuracy": 0.5, "val_loss": 0.5})
            if epoch == failed_after_epoch and not failed:  # the other worker, meanwhile
                other = optuna.load_study(study_name="woken", storage=url)
                (mine,) = other.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                other.tell(mine.number, state=optuna.trial.TrialState.FAIL)
                failed.append(mine.number)
        return []

    monkeypatch.setattr(tune_workers, "fit_and_validate", fit_failed_by_another)
    printed = []
    with pytest.warns(UserWarning, match="trial 0 was failed by another worker"):
        study = tune.run_study(config, None, tmp_path, lambda s, t: printed.append(t), False)
    assert failed == [0]
    assert [(t.number, t.state.name) for t in printed] == [(0, "FAIL"), (1, "COMPLETE"),
                                                          (2, "COMPLETE")]  # fmt: skip
    assert tune_study.finished_count(study) == config.trials
    assert not [r for r in caplog.records if r.exc_info]  # no traceback, as if it crashed


def test_a_worker_waits_out_a_sqlite_lock_longer_than_five_seconds(tmp_path):
    """sqlite3 gives up on a lock after 5 s: a worker reporting an epoch while another
    connection held the study's database that long died with its trial."""
    import sqlite3
    import threading

    study = tune.open_study(TuneConfig(study="locked"), tmp_path)
    trial = study.ask()
    other = sqlite3.connect(tune_study.study_dir(tmp_path, "locked") / tune_study.STUDY_DB,
                            isolation_level=None, check_same_thread=False)  # fmt: skip
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(7, other.rollback)
    release.start()
    try:
        trial.report(0.5, 0)
    finally:
        release.join()
        other.close()
    assert study.get_trials()[trial.number].intermediate_values == {0: 0.5}


def test_a_surplus_trial_stands_down_and_names_its_worker(tmp_path):
    """Two workers that take the last place at once: the later trial is not run, and it
    records its worker like any other trial (readers of the study look for it)."""
    config = TuneConfig(study="full", trials=1, storage=f"sqlite:///{tmp_path / 's.db'}")
    study = tune.open_study(config, tmp_path)
    study.ask()  # running elsewhere: it holds the only place
    late = study.ask()
    with pytest.raises(tune_workers.SurplusTrial):
        tune_workers.objective(config, None)(late)
    owner = study.get_trials()[late.number].user_attrs
    assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())


def test_two_worker_processes_by_default_where_there_are_two_cores(monkeypatch):
    for cores, jobs in [(1, 1), (2, 2), (16, 2)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert tune.local_jobs(TuneConfig()) == jobs
    assert tune.local_jobs(TuneConfig(jobs=3)) == 3


def test_a_trial_whose_worker_died_before_recording_itself_is_failed(tmp_path, monkeypatch):
    """Killed between Optuna making its trial and the objective's first line, a worker left
    the trial RUNNING with no owner and no heartbeat: a place in the study, held for good.
    (Seen in CI, killing a worker at random.)"""
    monkeypatch.setattr(tune_study, "GRACE_SECONDS", 1)
    config = TuneConfig(study="early", storage=f"sqlite:///{tmp_path / 's.db'}")
    study = tune.open_study(config, tmp_path)
    ownerless = study.ask()
    # Young, it may be a live worker's that is about to record itself.
    assert tune_study.fail_dead_local_trials(study) == []
    time.sleep(1.5)
    assert tune_study.fail_dead_local_trials(study) == [ownerless.number]
    assert study.trials[ownerless.number].state == optuna.trial.TrialState.FAIL


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_resumed_study_draws_no_trial_again(tmp_path, monkeypatch, sampler):
    """With a fixed seed, the first trial after a resume repeated the study's first."""

    def fit(config, data, on_epoch_end):
        on_epoch_end(0, {"val_accuracy": 0.9, "val_loss": 0.1})
        return [{"val_accuracy": 0.9}]

    monkeypatch.setattr(tune_workers, "fit_and_validate", fit)
    config = TuneConfig(study="resumed", trials=3, seed=7, jobs=1, sampler=sampler,
                        pruner="none", storage=f"sqlite:///{tmp_path / 's.db'}")  # fmt: skip
    tune.run_study(config, None, tmp_path, False)  # stopped (or killed) after 3 trials
    study = tune.run_study(dataclasses.replace(config, trials=6), None, tmp_path, False)
    params = [tuple(sorted(t.params.items())) for t in study.get_trials()]
    assert len(params) == 6
    assert len(set(params)) == 6

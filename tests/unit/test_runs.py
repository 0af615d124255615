import os
from datetime import datetime

import pytest

from mnistlab import runs
from mnistlab.config import EnsembleConfig, TrainConfig, preset_config


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), runs.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_path_keeps_the_suffix_and_replaces_on_success(tmp_path):
    target = tmp_path / "model.keras"
    with runs.atomic_path(target) as tmp:
        assert tmp.suffix == ".keras"
        assert tmp.parent == tmp_path
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert len(list(tmp_path.iterdir())) == 1


def test_write_json_round_trip(tmp_path):
    runs.write_json(tmp_path / "a.json", {"x": [1, 2]})
    runs.write_json(tmp_path / "a.json", {"x": [3]})
    assert runs.read_json(tmp_path / "a.json") == {"x": [3]}


def test_new_run_dir_is_named_by_time_and_preset_and_never_reused(tmp_path):
    now = datetime(2026, 11, 21, 4, 5, 6)
    first = runs.new_run_dir(tmp_path, "deep-mlp", now)
    assert first.name == "20261121-040506-deep-mlp"
    first.mkdir()
    assert runs.new_run_dir(tmp_path, "deep-mlp", now).name == "20261121-040506-deep-mlp-2"


CONFIG = {**TrainConfig(preset="p", epochs=3, hidden_units=(4, 2)).to_dict()}
RECORD = {"config": CONFIG, "data_source": "m", "data_sha256": "abc", "keras_version": "3.0"}


def test_start_creates_the_run_and_resumes_an_unfinished_one(tmp_path):
    run_dir = tmp_path / "run"
    assert runs.start(run_dir, RECORD) is False
    assert runs.read_json(run_dir / runs.CONFIG)["config"]["hidden_units"] == [4, 2]
    # A restart may use another Keras version, but must train the same thing.
    assert runs.start(run_dir, {**RECORD, "keras_version": "3.1"}) is True


@pytest.mark.parametrize(
    ("change", "named"),
    [({"config": {**CONFIG, "epochs": 4}}, "epochs"), ({"data_sha256": "x"}, "data")],
)
def test_start_refuses_to_resume_something_different(tmp_path, change, named):
    runs.start(tmp_path, RECORD)
    with pytest.raises(runs.RunError, match=f"with different {named};"):
        runs.start(tmp_path, {**RECORD, **change})


def test_start_refuses_a_finished_run_and_leaves_it_alone(tmp_path):
    runs.start(tmp_path, RECORD)
    runs.finish(tmp_path, {"test_accuracy": 0.98})
    with pytest.raises(runs.RunError, match="finished run"):
        runs.start(tmp_path, RECORD)
    assert runs.read_json(tmp_path / runs.METRICS) == {"test_accuracy": 0.98}


def test_start_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(runs.RunError, match="not a mnistlab run"):
        runs.start(tmp_path, RECORD)


def test_a_run_is_finished_only_once_metrics_exist_and_resume_state_goes(tmp_path):
    runs.start(tmp_path, RECORD)
    (tmp_path / runs.BACKUP).mkdir()
    (tmp_path / runs.EARLY_STOPPING_STATE).mkdir()
    assert not runs.is_finished(tmp_path)
    runs.finish(tmp_path, {"test_accuracy": 0.5})
    assert runs.is_finished(tmp_path)
    assert not (tmp_path / runs.BACKUP).exists()
    assert not (tmp_path / runs.EARLY_STOPPING_STATE).exists()


def test_a_locked_run_refuses_a_second_holder_and_names_the_first(tmp_path):
    run_dir = tmp_path / "run"
    with runs.locked(run_dir):
        assert runs.holder(run_dir) == str(os.getpid())
        # flock conflicts between two open files even within one process.
        second = pytest.raises(runs.RunError, match=f"is being trained by PID {os.getpid()}$")
        with second, runs.locked(run_dir):
            pass
        runs.start(run_dir, RECORD)  # the lock file does not make the folder foreign
        runs.finish(run_dir, {"test_accuracy": 0.5})
    assert runs.holder(run_dir) is None
    assert not (run_dir / runs.LOCK).exists()  # a finished run keeps no lock file


METRICS = {"test_accuracy": 0.5, "test_loss": 1.2, "epochs_run": 1, "training_seconds": 1.0}
TRAIN = preset_config("mlp-128", epochs=1)


def finished_run(run_dir, config=TRAIN, history=()):
    runs.start(run_dir, runs.run_record(config, "mnist.npz", "abc", "jax"))
    runs.write_json(run_dir / runs.HISTORY, list(history))
    runs.finish(run_dir, METRICS)
    return run_dir


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [(runs.CONFIG, "{", "not valid JSON"), (runs.CONFIG, '{"config": {}}', "not a mnistlab run"),
     (runs.CONFIG, '{"config": {"colour": 1}, "data_source": "m", "data_sha256": "a"}',
      "cannot use .unknown TrainConfig keys: colour"),
     (runs.METRICS, '{"test_accuracy": "high"}', "lacks one of test_accuracy"),
     (runs.HISTORY, '{"epoch": 1}', "not a list of epochs")],
)  # fmt: skip
def test_damaged_records_name_their_file(tmp_path, name, content, message):
    finished_run(tmp_path)
    (tmp_path / name).write_text(content)
    with pytest.raises(runs.RunError, match=f"^{tmp_path / name}: damaged.*{message}"):
        runs.open_run(tmp_path)


def test_open_run_reads_each_record_once_into_types(tmp_path):
    history = [{"epoch": 1, "val_loss": 0.3}]
    run = runs.open_run(finished_run(tmp_path, history=history))
    assert run.config == TRAIN  # a TrainConfig again, tuples and all
    assert (run.kind, run.preset, run.name) == ("train", "mlp-128", tmp_path.name)
    assert (run.data_source, run.data_sha256) == ("mnist.npz", "abc")
    assert run.provenance["backend"] == "jax"
    assert run.metrics == METRICS
    assert run.history == history


def test_an_ensemble_run_has_its_own_config_type(tmp_path):
    config = EnsembleConfig(members=("a", "b"))
    run = runs.open_run(finished_run(tmp_path, config))
    assert run.config == config
    assert (run.kind, run.preset) == ("ensemble", "ensemble")


def test_an_ensemble_of_mnistlab_0_1_0_still_opens(tmp_path):
    # 0.1.0 wrote no kind, and an EnsembleConfig with preset "ensemble".
    finished_run(tmp_path, EnsembleConfig(members=("a", "b")))
    record = runs.read_json(tmp_path / runs.CONFIG)
    del record["kind"]
    record["config"]["preset"] = "ensemble"
    runs.write_json(tmp_path / runs.CONFIG, record)
    run = runs.open_run(tmp_path)
    assert (run.kind, run.config.members) == ("ensemble", ("a", "b"))


def test_open_run_tells_an_unfinished_run_from_a_stranger(tmp_path):
    with pytest.raises(runs.RunError, match="not a mnistlab run"):
        runs.open_run(tmp_path)
    runs.start(tmp_path, runs.run_record(TRAIN, "mnist.npz", "abc", "jax"))
    with pytest.raises(runs.RunError, match="unfinished run"):
        runs.open_run(tmp_path)
    assert runs.open_run(tmp_path, finished=False).metrics is None


def test_find_run_matches_config_and_data_and_skips_damaged_runs(tmp_path):
    finished_run(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / runs.METRICS).write_text("{")  # damaged: skipped, not fatal
    assert runs.find_run(tmp_path, TRAIN, "abc").path == tmp_path / "a"
    assert runs.find_run(tmp_path, TRAIN, "other data") is None
    assert runs.find_run(tmp_path, preset_config("mlp-128", epochs=2), "abc") is None


def test_run_record_names_what_a_result_depends_on():
    import importlib.metadata

    import numpy

    record = runs.run_record(TrainConfig(preset="p"), "mnist.npz", "abc", "jax")
    assert record["numpy_version"] == numpy.__version__
    for name in ("keras", "jax", "jaxlib"):
        assert record[f"{name}_version"] == importlib.metadata.version(name)
    assert record["cpu"] and record["cpu_count"] == os.cpu_count()
    assert "tensorflow_version" not in record  # only the backend that ran


def _dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_a_dead_writers_partial_goes_with_the_next_write_and_a_live_ones_stays(tmp_path):
    dead = tmp_path / f".model.{_dead_pid()}-0123abcd.partial.keras"
    dead.write_bytes(b"half")
    saved_model = tmp_path / f".m.{_dead_pid()}-0123abcd.partial.savedmodel"
    (saved_model / "variables").mkdir(parents=True)
    live = runs.partial_path(tmp_path / "other.keras")
    live.write_bytes(b"being written")
    mine = tmp_path / "notes.partial.txt"  # not a name a writer makes: the user's own
    mine.write_text("mine")
    runs.write_json(tmp_path / "a.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.json", live.name, mine.name])


def test_a_folder_written_in_place_of_a_folder_replaces_it_whole(tmp_path):
    target = tmp_path / "model.savedmodel"
    (target / "old").mkdir(parents=True)
    with runs.atomic_path(target) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.savedmodel"]


def test_a_full_disk_is_a_run_error_naming_the_path_and_leaves_no_partial(tmp_path):
    import errno

    target = tmp_path / "model.keras"
    no_space = pytest.raises(runs.RunError, match=f"^no space left on the device for {target};")
    with no_space, runs.atomic_path(target) as tmp:
        tmp.write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("config", "extra", "command"),
    [(TRAIN, {}, "mnistlab train"),
     (EnsembleConfig(members=("a", "b")), {}, "mnistlab ensemble"),
     (TRAIN, {"pruned": {"parent": "p"}}, "mnistlab prune")],
)  # fmt: skip
def test_an_unfinished_run_names_the_command_that_finishes_it(tmp_path, config, extra, command):
    runs.start(tmp_path, {**runs.run_record(config, "mnist.npz", "abc", "jax"), **extra})
    with pytest.raises(runs.RunError, match=f"unfinished run .*; run {command} again"):
        runs.open_run(tmp_path)

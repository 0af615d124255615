"""read and predict on many files: worker processes (--jobs), a resumable results file
(--out), and a real local Ray cluster (--ray, mnistlab.read_dataset)."""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from PIL import Image

from mnistlab import cli as cli_module
from mnistlab.read import FILES_PER_BATCH, documents

NUMBERS = 3 * FILES_PER_BATCH - 10  # three chunks: both workers of --jobs 2 take some


@pytest.fixture(scope="module")
def numbers(mnist, tmp_path_factory):
    """Five-digit numbers written with MNIST test digits, and one corrupt file among them."""
    root = tmp_path_factory.mktemp("numbers")
    made = documents.number_strings(mnist.x_test, mnist.y_test, NUMBERS, seed=21, length=5)
    for i, d in enumerate(made):
        Image.fromarray(d.image).save(root / f"n{i:03d}.png")
    (root / "n040-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


@pytest.fixture(scope="module")
def one_job(cli, conv_runs, numbers, tmp_path_factory):
    """The readings of one process, uninterrupted: the reference."""
    out = tmp_path_factory.mktemp("one") / "results.jsonl"
    result = cli("read", conv_runs["cnn"], numbers, "--jobs", "1", "--out", out)
    assert result.returncode == 1, result.stderr  # the corrupt file
    return _records(out)


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _same_readings(got: list[dict], want: list[dict]) -> None:
    """Equal files in order, texts, boxes and errors; confidences to the last place or so
    (other thread counts sum in another order)."""
    assert [r["file"] for r in got] == [r["file"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert (g.get("text"), g.get("error")) == (w.get("text"), w.get("error")), g["file"]
        assert [d["box"] for d in g.get("digits", [])] == [d["box"] for d in w.get("digits", [])]
        if "confidence" in w:
            assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-5)


def test_two_jobs_read_as_one_in_the_same_order(cli, conv_runs, numbers, one_job, tmp_path):
    assert len(one_job) == NUMBERS + 1
    corrupt = [r for r in one_job if "error" in r]
    assert [r["file"] for r in corrupt] == [str(numbers / "n040-corrupt.png")]
    out = tmp_path / "results.jsonl"
    result = cli("read", conv_runs["cnn"], numbers, "--jobs", "2", "--out", out)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{NUMBERS + 1} files: ")
    assert ", 1 failed; " in result.stdout and "files/s" in result.stdout
    _same_readings(_records(out), one_job)


def test_two_jobs_print_what_one_prints(cli, default_run, numbers):
    """Without --out, the lines on standard output; a Dense run this time."""
    printed = [
        cli("read", default_run[0], numbers, "--jobs", str(jobs), "--json").stdout
        for jobs in (1, 2)
    ]
    one, two = ([json.loads(line) for line in text.splitlines()] for text in printed)
    assert len(one) == NUMBERS + 1
    _same_readings(two, one)


def test_predict_with_two_jobs_answers_as_one(cli, mnist, default_run, tmp_path):
    from mnistlab.predictor import FILES_PER_CALL

    for i in range(FILES_PER_CALL + 20):  # two chunks
        Image.fromarray(255 - mnist.x_test[i]).save(tmp_path / f"d{i:03d}.png")
    printed = [
        cli("predict", default_run[0], tmp_path, "--jobs", str(jobs), "--json").stdout
        for jobs in (1, 2)
    ]
    one, two = ([json.loads(line) for line in text.splitlines()] for text in printed)
    assert len(one) == FILES_PER_CALL + 20
    assert [(r["file"], r["digit"]) for r in two] == [(r["file"], r["digit"]) for r in one]
    right = sum(r["digit"] == mnist.y_test[i] for i, r in enumerate(two))
    assert right >= 0.95 * len(two)


def _writing(command: list[str], out, records: int = 1) -> tuple[subprocess.Popen, list[int]]:
    """The command started, once its workers run and it has written `records` records:
    (its process, its workers)."""
    # Ctrl-C as at a terminal: a shell that started this test in the background has
    # SIGINT ignored, and a child inherits that.
    parent = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        assert parent.poll() is None and time.monotonic() < deadline, "no worker or record"
        workers = []
        for child in psutil.Process(parent.pid).children():
            with contextlib.suppress(psutil.Error):  # ended meanwhile
                if "spawn_main" in " ".join(child.cmdline()):
                    workers.append(child.pid)
        written = out.read_text().count("\n") if out.exists() else 0
        if len(workers) == 2 and written >= records:
            return parent, workers
        time.sleep(0.05)


def _failing_left(written: list[dict]) -> int:
    """The exit status of the run that resumes from `written`: 1 while the corrupt file's
    record is still to come, else 0 (the run killed may have written it)."""
    return 0 if any("error" in r for r in written) else 1


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_killed_run_resumes_to_one_record_per_file(conv_runs, numbers, one_job, tmp_path):
    """SIGKILL once records are written: no worker outlives the parent; a torn last line
    (a kill mid-write) is cut off; the same command again ends with each file once, read
    as an uninterrupted run reads it."""
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "mnistlab", "read", str(conv_runs["cnn"]), str(numbers),
               "--jobs", "2", "--out", str(out)]  # fmt: skip
    parent, workers = _writing(command, out)
    parent.kill()
    parent.communicate()
    deadline = time.monotonic() + 30
    while any(map(_alive, workers)):
        assert time.monotonic() < deadline, "worker processes outlived their parent"
        time.sleep(0.1)
    written = _records(out)
    assert 0 < len(written) < NUMBERS + 1
    with open(out, "a") as f:
        f.write('{"file": "' + str(numbers / "n0"))  # a torn record
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == _failing_left(written), resumed.stderr
    assert f", {len(written)} already in {out}" in resumed.stdout
    _same_readings(_records(out), one_job)


def test_a_second_process_on_the_same_results_file_is_refused(cli, default_run, numbers, tmp_path):
    out = tmp_path / "results.jsonl"
    with open(out, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = cli("read", default_run[0], numbers, "--out", out)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"mnistlab: error: --out {out}: another process is writing it"
    )
    assert out.read_text() == ""


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_jobs_must_be_a_whole_number(cli, default_run, numbers, bad):
    result = cli("read", default_run[0], numbers, "--jobs", bad)
    assert result.returncode == 2
    assert "--jobs takes a whole number >= 1" in result.stderr


def test_ray_without_ray_installed_says_how_to_install_it(
    default_run, numbers, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    code = cli_module.main(["read", str(default_run[0]), str(numbers), "--ray"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "mnistlab: error: Ray is not installed; to use a Ray cluster: pip install 'mnistlab[ray]'"
    )


def test_ray_reads_as_processes_do(cli, conv_runs, numbers, one_job, tmp_path):
    """A real local Ray cluster that the command starts and stops: two actors."""
    pytest.importorskip("ray")
    out = tmp_path / "results.jsonl"
    result = cli("read", conv_runs["cnn"], numbers, "--ray", "--jobs", "2", "--out", out)
    assert result.returncode == 1, result.stderr
    assert f"{NUMBERS + 1} files: " in result.stdout
    _same_readings(_records(out), one_job)


def test_read_dataset_reads_bytes_on_a_local_cluster(conv_runs, numbers, one_job, tmp_path):
    """mnistlab.read_dataset over read_binary_files (as from object storage), written as
    Parquet: a row per file with its reading."""
    ray = pytest.importorskip("ray")
    import pyarrow.parquet as pq

    import mnistlab

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        images = ray.data.read_binary_files(str(numbers), include_paths=True)
        mnistlab.read_dataset(images, conv_runs["cnn"], actors=1).write_parquet(tmp_path / "pq")
    finally:
        ray.shutdown()
    table = pq.read_table(tmp_path / "pq").to_pylist()
    by_path = {os.path.basename(row["path"]): row for row in table}
    assert len(by_path) == NUMBERS + 1
    for want in one_job:
        row = by_path[os.path.basename(want["file"])]
        assert (row["text"], row["error"] is None) == (want.get("text"), "error" not in want)
        assert json.loads(row["record"]).get("text") == want.get("text")
    assert by_path["n040-corrupt.png"]["error"]


def test_ctrl_c_stops_the_workers_and_keeps_what_was_written(conv_runs, numbers, tmp_path):
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "mnistlab", "read", str(conv_runs["cnn"]), str(numbers),
               "--jobs", "2", "--out", str(out)]  # fmt: skip
    parent, workers = _writing(command, out)
    parent.send_signal(signal.SIGINT)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130, err
    assert err.strip().splitlines()[-1] == "mnistlab: interrupted"
    assert not any(map(_alive, workers))
    records = _records(out)  # whole records only
    assert records and all(r["file"].startswith(str(numbers)) for r in records)


def test_a_results_file_that_is_not_ours_is_refused_and_kept(cli, default_run, numbers, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nkeep them")
    result = cli("read", default_run[0], numbers, "--out", notes)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"mnistlab: error: --out {notes}: line 1 is not a record of mnistlab's; name a new "
        "file, or the results file of the same command"
    )
    assert notes.read_text() == "my notes\nkeep them"
    folder = cli("read", default_run[0], numbers, "--out", tmp_path)
    assert folder.returncode == 2
    assert f"--out {tmp_path}: not a regular file" in folder.stderr


def test_a_full_disk_leaves_whole_records_only(default_run, numbers, tmp_path):
    """The file-size limit makes a write fail part-way, as a full disk does: one clear
    line, exit 2, and the records before it whole; the same command later finishes."""
    import resource

    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "mnistlab", "read", str(default_run[0]), str(numbers),
               "--jobs", "1", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    full = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=limit)
    assert full.returncode == 2, full.stderr
    assert full.stderr.strip().splitlines()[-1] == f"mnistlab: error: --out {out}: File too large"
    kept = _records(out)  # every line parses
    assert len(kept) == FILES_PER_BATCH
    again = subprocess.run(command, capture_output=True, text=True, env=env)
    assert again.returncode == 1, again.stderr
    assert len(_records(out)) == NUMBERS + 1


def test_a_worker_killed_stops_the_run_in_one_line_and_it_resumes(
    conv_runs, numbers, one_job, tmp_path
):
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "mnistlab", "read", str(conv_runs["cnn"]), str(numbers),
               "--jobs", "2", "--out", str(out)]  # fmt: skip
    # Killed before the first chunk is answered, so that the run cannot have ended.
    parent, workers = _writing(command, out, records=0)
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "mnistlab: error: a worker process died (out of memory? killed?); run again with "
        "fewer --jobs"
    )
    left = _failing_left(_records(out))
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == left, again.stderr
    _same_readings(_records(out), one_job)

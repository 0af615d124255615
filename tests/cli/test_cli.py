"""The command line end to end in tiny mode, and every way a user can get it wrong."""

import os
import pstats
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnistlab import runs


def test_help_does_not_import_keras():
    # Keras takes seconds to import; help must not pay for it.
    script = """
import sys
from mnistlab.cli import main
for argv in (["--help"], ["train", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
print("keras" in sys.modules, "jax" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "False False"


def test_commands_import_keras_without_what_they_never_use(tiny_runs, mnist, tmp_path):
    # Keras' own import of scikit-learn and pyplot was 1.7 s of every `mnistlab predict`.
    # `runs` needs no Keras at all.
    digit = tmp_path / "digit.png"
    Image.fromarray(255 - mnist.x_test[0]).save(digit)  # dark ink on white paper
    script = f"""
import sys
from mnistlab.cli import main
main(["runs", "--root", {str(tmp_path)!r}])
print("keras" in sys.modules)
assert main(["predict", {str(tiny_runs[0])!r}, {str(digit)!r}]) == 0
print("keras" in sys.modules, "sklearn" in sys.modules, "matplotlib.pyplot" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "False"
    assert lines[-1] == "True False False"


def test_the_command_ends_as_python_would_with_threads_handlers_and_output_done():
    # run() ends the process without Python's teardown; nothing a normal exit does may go.
    script = """
import atexit, sys, threading, time
from mnistlab import cli

def main():
    atexit.register(lambda: print("exit handler"))
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread"))).start()
    print("x" * 100_000)  # more than the pipe's buffer; stdout is not flushed by itself
    print("to stderr", file=sys.stderr)
    return 3

cli.main = main
cli.run()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_buffered()
    )
    assert result.returncode == 3
    assert result.stdout.splitlines() == ["x" * 100_000, "thread", "exit handler"]
    assert result.stderr == "to stderr\n"


def test_a_profiled_command_still_gets_its_profile(tmp_path):
    # `python -m cProfile -o F -m mnistlab ...` writes F after the command has returned.
    profile = tmp_path / "profile"
    command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "mnistlab", "runs",
               "--root", tmp_path]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert pstats.Stats(str(profile)).total_calls > 0


def test_the_command_into_a_closed_pipe_ends_quietly():
    # `mnistlab runs | true`: the reader is gone before the output is flushed.
    script = """
import time
from mnistlab import cli

def main():
    time.sleep(0.5)  # long enough for the reader to be gone
    print("a line")
    return 0

cli.main = main
cli.run()
"""
    command = ["bash", "-c", 'set -o pipefail; "$0" -c "$1" | true', sys.executable, script]
    result = subprocess.run(command, capture_output=True, text=True, env=_buffered())
    assert result.returncode == 0
    assert result.stderr == ""


def test_a_command_writing_into_a_closed_pipe_stops_quietly(tiny_runs, mnist, tmp_path):
    # `mnistlab predict RUN *.png | head -1`: the reader goes while answers are written.
    Image.fromarray(255 - mnist.x_test[0]).save(tmp_path / "d.png")
    command = f"{sys.executable} -m mnistlab predict {tiny_runs[0]} {' d.png' * 3000} | head -1"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.startswith("d.png: ")
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr


def _buffered() -> dict[str, str]:
    """The environment with Python's output buffered, as it is by default."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def test_train_help_gives_every_default(cli):
    out = cli("train", "--help").stdout
    for option, default in [("--epochs", "50"), ("--batch-size", "128"),
                            ("--learning-rate", "0.001"), ("--validation-split", "0.2"),
                            ("--patience", "5"), ("--seed", "0"),
                            ("--preset", "deep-mlp")]:  # fmt: skip
        assert option in out
        assert f"(default: {default})" in " ".join(out.split()), option


def test_tiny_training_end_to_end(cli, tmp_path):
    result = cli("train", "--limit", 2000, "--epochs", 1, "--h5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-deep-mlp", run_dir.name)
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"test_accuracy=0\.\d{{4}} test_loss=\d+\.\d{{4}} run=runs/{run_dir.name}", last
    )
    # Keras' line for the epoch (a progress bar on a terminal): 1,600 images, batch 128.
    assert re.search(r"^13/13 - .* - val_accuracy: 0\.\d+ - val_loss: ", result.stdout, re.M)
    names = {p.name for p in run_dir.iterdir()}
    assert names == {"config.json", "history.json", "metrics.json", "best_model.keras",
                     "final_model.keras", "final_model.h5", "tensorboard"}  # fmt: skip
    config = runs.read_json(run_dir / runs.CONFIG)["config"]
    assert (config["limit"], config["epochs"], config["save_h5"]) == (2000, 1, True)
    assert runs.read_json(run_dir / runs.METRICS)["epochs_run"] == 1


def test_quiet_prints_only_the_result(cli, tmp_path):
    result = cli("train", "--quiet", "--limit", 500, "--epochs", 1, "--preset", "mlp-128",
                 "--run-dir", tmp_path / "r")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("test_accuracy=")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be > 0"),
        (["--validation-split", "1.5"], "--validation-split must be in (0, 1)"),
        (["--limit", "1"], "--limit must be > 1"),
        (["--preset", "resnet"], "invalid choice: 'resnet'"),
        (["--batch-size", "ten"], "invalid int value: 'ten'"),
        (["--data", "missing.npz"], "missing.npz: no such file"),
    ],
)
def test_bad_options_exit_non_zero_with_one_line_and_leave_nothing(cli, tmp_path, args, message):
    result = cli("train", *args, "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_broken_data_exits_non_zero_and_writes_no_run(cli, tmp_path):
    broken = tmp_path / "broken.npz"
    np.savez(broken, x_train=np.zeros((10, 32, 32), np.uint8), y_train=np.zeros(10, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))  # fmt: skip
    result = cli("train", "--data", broken, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mnistlab: error: {broken}: x_train has shape (10, 32, 32), expected (N, 28, 28)"
    )
    assert not (tmp_path / "runs").exists()


def test_a_finished_run_is_never_overwritten(cli, tmp_path):
    run_dir = tmp_path / "run"
    runs.start(run_dir, {"config": {}, "data_sha256": ""})
    runs.finish(run_dir, {"test_accuracy": 0.99})
    result = cli("train", "--limit", 500, "--epochs", 1, "--run-dir", run_dir)
    assert result.returncode == 2
    assert "is a finished run" in result.stderr
    assert runs.read_json(run_dir / runs.METRICS) == {"test_accuracy": 0.99}


def test_augmented_training_is_recorded_and_reproducible(cli, tmp_path):
    for name, strength in (("a", 1), ("b", 1), ("mild", 0.5)):
        result = cli("train", "--quiet", "--augment", "--augment-strength", strength,
                     "--limit", 2000, "--epochs", 1, "--run-dir", tmp_path / name)  # fmt: skip
        assert result.returncode == 0, result.stderr
    config = runs.read_json(tmp_path / "mild" / runs.CONFIG)["config"]
    assert config["augment"] is True and config["augment_strength"] == 0.5
    first, second, mild = (
        runs.read_json(tmp_path / n / runs.HISTORY)[0] for n in ("a", "b", "mild")
    )
    assert first["loss"] == second["loss"]  # the same seed gives the same distortions
    assert mild["loss"] != first["loss"]  # the strength reaches the batches


def serve_and_read(run, *options):
    """Start `mnistlab serve`, wait for the lines that say where it is, GET the page; all
    it printed up to then and shortly after, and the URLs it announced."""
    import socket
    import threading
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(120, process.kill)  # silent forever: fail, not hang
    watchdog.start()
    try:
        lines = []
        while not any("API docs" in line for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)  # exited before saying where it is
            lines.append(line)
        urls = dict(re.findall(r"(drawing page|API docs)\s+(\S+)", "".join(lines)))
        for url in urls.values():
            assert urllib.request.urlopen(url, timeout=10).status == 200
        time.sleep(0.5)
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(timeout=30)
        rest = process.stdout.read()  # after what readline buffered (communicate skips it)
    return "".join(lines) + rest, urls, port


def test_serve_says_where_the_page_and_docs_are_and_logs_requests_when_asked(tiny_runs):
    out, urls, port = serve_and_read(tiny_runs[0])
    assert urls == {"drawing page": f"http://127.0.0.1:{port}/",
                    "API docs": f"http://127.0.0.1:{port}/docs"}  # fmt: skip
    assert "this machine only" in out
    assert "GET /docs" not in out  # no access log unless asked
    out, _, _ = serve_and_read(tiny_runs[0], "--access-log")
    assert '"GET /docs HTTP/1.1" 200' in out


def test_serve_on_a_port_in_use_is_one_line_not_an_announcement(cli, tiny_runs, served_on_loopback):
    with served_on_loopback(tiny_runs[0]) as url:
        port = url.rsplit(":", 1)[1]
        second = cli("serve", tiny_runs[0], "--port", port, timeout=120)
    assert second.returncode == 2
    assert second.stdout == ""  # the other server's /health must not be taken for its own
    assert second.stderr == (
        f"mnistlab: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another --port\n"
    )

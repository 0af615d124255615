"""Shared fixtures. Tests run on the real MNIST beside the project when it is there."""

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


def pytest_configure(config):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from mnistlab import backend

    backend.choose()  # JAX's compile cache, as every user process has it
    if not os.environ.get("MNISTLAB_DATA") and SHARED_MNIST.is_file():
        os.environ["MNISTLAB_DATA"] = str(SHARED_MNIST)


def pytest_collection_modifyitems(config, items):
    """Every test under tests/unit/ is of the unit tier (make test-fast)."""
    unit = ROOT / "tests" / "unit"
    for item in items:
        if item.path.is_relative_to(unit):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def mnist():
    from mnistlab.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def cli():
    """Run `python -m mnistlab ARGS` in a fresh process, as a user would."""

    def run(*args, cwd=None, timeout=600):
        return subprocess.run(
            [sys.executable, "-m", "mnistlab", *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def terminal():
    """Run `python -m mnistlab ARGS` with its output on a pseudo-terminal (as a user sees
    it: progress bars drawn); everything it wrote, as text without colours."""
    import fcntl
    import pty
    import re
    import termios

    def run(*args, timeout=300):
        leader, follower = pty.openpty()
        # 24 rows, 100 columns: a new pty has no size, and tqdm draws nothing in 0 columns.
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        process = subprocess.Popen([sys.executable, "-m", "mnistlab", *map(str, args)],
                                   stdout=follower, stderr=follower, close_fds=True)  # fmt: skip
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode(errors="replace"))
        assert process.wait(timeout=timeout) == 0, text[-2000:]
        return text

    return run


@pytest.fixture(scope="session")
def served_on_loopback():
    """A context manager: `mnistlab serve RUN OPTIONS...` for real on a free loopback port,
    yielding its URL once /health answers, stopped at the end."""

    @contextlib.contextmanager
    def serve(run, *options, log=None):
        """`log`: a file to take the server's output (its log lines), else the terminal's."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = open(log, "w") if log else None  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port),
             *map(str, options)], stdout=out, stderr=subprocess.STDOUT if out else None,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1)
                    break
                except OSError:
                    assert process.poll() is None, "the server exited"
                    assert time.monotonic() < deadline, "the server did not come up"
                    time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)
            if out:
                out.close()

    return serve


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """One full training of the default preset with its default seed: (run_dir, stdout)."""
    run_dir = tmp_path_factory.mktemp("default") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "mnistlab", "train", "--quiet", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    return run_dir, result.stdout


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Two short real trainings of different presets, for evaluate/compare mechanics."""
    root = tmp_path_factory.mktemp("tiny")
    made = []
    for preset in ("deep-mlp", "mlp-128"):
        run_dir = root / preset
        result = subprocess.run(
            [sys.executable, "-m", "mnistlab", "train", "--quiet", "--preset", preset,
             "--limit", "3000", "--epochs", "2", "--run-dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        made.append(run_dir)
    return made


@pytest.fixture(scope="session")
def conv_runs(tmp_path_factory):
    """Two short real trainings of the cnn-basic preset and their ensemble:
    {"cnn": run, "ensemble": run}, for what must hold on every kind of model."""
    root = tmp_path_factory.mktemp("conv")
    for seed in (0, 1):
        result = subprocess.run(
            [sys.executable, "-m", "mnistlab", "train", "--quiet", "--preset", "cnn-basic",
             "--limit", "2000", "--epochs", "1", "--seed", str(seed),
             "--run-dir", root / f"cnn{seed}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "mnistlab", "ensemble", root / "cnn0", root / "cnn1",
         "--out", root / "ensemble"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"cnn": root / "cnn0", "ensemble": root / "ensemble"}


@pytest.fixture
def png_claiming():
    """A tiny PNG whose header claims any size: a decompression bomb's calling card."""

    def make(width: int, height: int) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data))
            )

        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        body = zlib.compress(b"\0" * 10)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", body)
            + chunk(b"IEND", b"")
        )

    return make

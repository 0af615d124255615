"""Shared fixtures. Tests run on the real MNIST beside the project when it is there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


def pytest_configure(config):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if not os.environ.get("MNISTLAB_DATA") and SHARED_MNIST.is_file():
        os.environ["MNISTLAB_DATA"] = str(SHARED_MNIST)


@pytest.fixture(scope="session")
def mnist():
    from mnistlab.data import load_mnist

    return load_mnist()


@pytest.fixture
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

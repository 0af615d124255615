"""JAX's compiled programs kept on disk between processes (backend._compile_cache)."""

import os
import subprocess
import sys

from mnistlab import backend, runs

TINY = ("train", "--quiet", "--limit", "600", "--epochs", "2", "--preset", "mlp-128")


def _train(tmp_path, name):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "mnistlab", *TINY, "--run-dir", tmp_path / name],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result, runs.read_json(tmp_path / name / runs.METRICS)


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    _, first = _train(tmp_path, "a")
    folder = tmp_path / "cache" / "mnistlab" / "jax"
    entries = sorted(folder.iterdir())
    assert len(entries) > 5
    _, second = _train(tmp_path, "b")
    assert sorted(folder.iterdir()) == entries  # nothing new compiled
    assert second["test_accuracy"] == first["test_accuracy"]


def test_entries_a_kill_cut_short_are_compiled_again_without_a_word(tmp_path):
    _, first = _train(tmp_path, "a")
    for entry in (tmp_path / "cache" / "mnistlab" / "jax").iterdir():
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    result, second = _train(tmp_path, "b")
    assert result.stderr == ""
    assert second["test_accuracy"] == first["test_accuracy"]


def test_past_the_limit_the_oldest_entries_go_down_to_half(tmp_path):
    for i in range(10):
        path = tmp_path / f"entry{i}"
        path.write_bytes(b"x" * 100)
        os.utime(path, (i, i))
    backend._trim(tmp_path, 1000)  # at the limit: kept
    assert len(list(tmp_path.iterdir())) == 10
    backend._trim(tmp_path, 900)  # 1000 bytes: the oldest go, down to 450 or less
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"entry{i}" for i in range(6, 10)]

"""read and predict on folders as they are found: FIFOs, links, names that are not UTF-8,
large scans and noise; a full disk under train, export and evaluate; what kill -9 leaves."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab import runs
from mnistlab.read import documents

FIFO_TIMEOUT = 120  # seconds: a FIFO used to block the command for good


@pytest.fixture(scope="module")
def number(mnist):
    """A five-digit number written with test digits (no touching pair): (image, text)."""
    made = documents.number_strings(mnist.x_test, mnist.y_test, 20, seed=3, length=5)
    first = next(d for d in made if not d.touching)
    return first.image, first.text


@pytest.fixture
def scans(tmp_path, number):
    """A folder with a number, a link to it, a FIFO named like an image, and a file whose
    name is not UTF-8."""
    Image.fromarray(number[0]).save(tmp_path / "a.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    os.mkfifo(tmp_path / "c.png")
    shutil.copy(tmp_path / "a.png", os.fsencode(tmp_path) + b"/d-caf\xe9.png")
    return tmp_path


@pytest.mark.parametrize("command", ["read", "predict"])
def test_a_fifo_is_skipped_and_the_rest_answered(cli, default_run, scans, command):
    result = cli(command, default_run[0], scans, "--json", timeout=FIFO_TIMEOUT)
    assert result.returncode == 0, result.stderr
    files = [json.loads(line)["file"] for line in result.stdout.splitlines()]
    assert files == [str(scans / "a.png"), str(scans / "b.png"), f"{scans}/d-caf\\xe9.png"]
    assert f"skipped {scans / 'c.png'}: not a regular file" in result.stderr
    assert "3 files:" in result.stderr and "1 skipped" in result.stderr


def test_a_fifo_named_alone_is_refused_at_once(cli, default_run, scans):
    result = cli("read", default_run[0], scans / "c.png", timeout=FIFO_TIMEOUT)
    assert result.returncode == 2
    assert "no image files found" in result.stderr


def test_file_names_that_are_not_utf8_come_out_as_valid_utf8(default_run, scans):
    """They came out as lone surrogates: JSON that strict parsers refuse, and a
    UnicodeEncodeError traceback in text mode."""
    for extra in ([], ["--json"]):
        out = subprocess.run(
            [sys.executable, "-m", "mnistlab", "read", default_run[0], scans, *extra],
            capture_output=True, timeout=FIFO_TIMEOUT, env={**os.environ, "LC_ALL": "C.UTF-8"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        text = out.stdout.decode("utf-8")  # strict: fails on any byte that is not UTF-8
        line = next(line for line in text.splitlines() if "caf" in line)
        if extra:
            name = json.loads(line)["file"]
            name.encode("utf-8")  # a lone surrogate cannot be encoded
            assert name.endswith("d-caf\\xe9.png")
        else:
            assert line.startswith(f"{scans}/d-caf\\xe9.png  ")


def test_boxes_are_in_the_pixels_of_a_large_scan(cli, default_run, tmp_path, number):
    """A 2240-px-wide scan is read on a 1,120-px copy; boxes came back in the copy's pixels."""
    image = Image.fromarray(number[0])
    scale = 2240 / image.width
    large = image.resize((2240, round(image.height * scale)), Image.Resampling.LANCZOS)
    image.save(tmp_path / "small.png")
    large.save(tmp_path / "large.png")
    result = cli("read", default_run[0], tmp_path / "small.png", tmp_path / "large.png", "--json")
    small_read, large_read = (json.loads(line) for line in result.stdout.splitlines())
    assert small_read["text"] == large_read["text"] == number[1]
    for s, g in zip(small_read["digits"], large_read["digits"], strict=True):
        np.testing.assert_allclose(g["box"], np.array(s["box"]) * scale, atol=2.5 * scale)


def test_noise_is_reported_as_no_digit(cli, default_run, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (100, 300), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    for command in ("read", "predict"):
        result = cli(command, default_run[0], tmp_path / "noise.png")
        assert result.returncode == 1
        assert "no digit-like ink" in result.stdout


def test_a_reading_of_no_confidence_is_never_accepted(cli, default_run, tmp_path, number):
    """A 5-digit number forced to 3 digits: confidence 0, and it used to be accepted."""
    Image.fromarray(number[0]).save(tmp_path / "n.png")
    result = cli("read", default_run[0], tmp_path / "n.png", "--length", "3", "--json")
    (record,) = map(json.loads, result.stdout.splitlines())
    assert len(record["text"]) == 3 and record["confidence"] == 0
    assert record["unsure"] is True
    assert "0 read, 1 unsure" in result.stderr


# A full disk, as a small tmpfs (root only; CI runs as root).
@pytest.fixture
def small_disk(tmp_path):
    made = []

    def mount(megabytes: float):
        where = tmp_path / f"disk{len(made)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k", "tmpfs", where],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
        made.append(where)
        return where

    yield mount
    for where in made:
        subprocess.run(["umount", "-l", where], check=False)


def _partials(folder):
    return [p for p in folder.rglob("*") if runs.PARTIAL_MARK in p.name]


def _one_line_no_space(result, path):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "mnistlab: error" in line]
    assert lines == [f"mnistlab: error: no space left on the device for {path}; "
                     "free some and run again"]  # fmt: skip
    assert "Traceback" not in result.stderr


def test_training_onto_a_full_disk_is_one_line_and_leaves_no_partial(cli, small_disk):
    disk = small_disk(1)
    run_dir = disk / "run"
    result = cli("train", "--epochs", "1", "--limit", "2000", "--quiet", "--run-dir", run_dir)
    _one_line_no_space(result, run_dir)
    assert _partials(disk) == []  # a 2 MB .best_model.partial.keras kept the disk full


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_exporting_onto_a_full_disk_is_one_line_and_leaves_nothing(cli, tiny_runs, small_disk, fmt):
    disk = small_disk(1)
    out = disk / f"model.{fmt}"
    _one_line_no_space(cli("export", tiny_runs[0], "--format", fmt, "--out", out), out)
    assert list(disk.iterdir()) == []


def test_evaluating_a_run_on_a_full_disk_is_one_line(cli, tiny_runs, small_disk):
    size = sum(p.stat().st_size for p in tiny_runs[1].rglob("*") if p.is_file())
    disk = small_disk(size / 1e6 + 0.1)  # room for the run, not for its report
    run = disk / "run"
    shutil.copytree(tiny_runs[1], run)
    result = cli("evaluate", run)
    assert result.returncode == 2, result.stderr
    assert "mnistlab: error: no space left on the device for " in result.stderr
    assert "Traceback" not in result.stderr
    assert _partials(disk) == []
    assert runs.open_run(run).finished  # what it had is untouched


CHEQUES = Path(__file__).resolve().parents[3] / "shared" / "data" / "cheques-dev"


@pytest.mark.skipif(not CHEQUES.is_dir(), reason=f"the real cheques are not in {CHEQUES}")
def test_adapting_onto_a_full_disk_is_one_line_and_resumes_once_there_is_room(
    cli, tiny_runs, small_disk, tmp_path
):
    names = sorted(p.name for p in CHEQUES.glob("*.jpg"))[:8]
    with open(CHEQUES / "labels.csv") as f:
        texts = dict(line.strip().split(",") for line in f)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\n" + "".join(f"{n},{texts[n]}\n" for n in names))
    size = sum(p.stat().st_size for p in tiny_runs[0].iterdir() if p.is_file())
    disk = small_disk(size / 1e6 + 0.5)  # room for the copy of the run, not for training
    args = ("adapt", tiny_runs[0], CHEQUES, "--labels", labels, "--epochs", "1")
    result = cli(*args, "--out", disk / "o")
    assert result.returncode == 2, result.stderr
    assert "mnistlab: error: no space left on the device for " in result.stderr
    assert "Traceback" not in result.stderr
    assert _partials(disk) == []
    grown = ["mount", "-o", "remount,size=64m", str(disk)]
    assert subprocess.run(grown, capture_output=True).returncode == 0
    again = cli(*args, "--out", disk / "o")
    assert again.returncode == 0, again.stderr
    assert (disk / "o" / "reader" / "reader.json").is_file() and _partials(disk) == []


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_a_killed_writers_leftovers_go_when_the_folder_is_next_written(cli, tiny_runs, tmp_path):
    """kill -9 mid-export or mid-ensemble left ~7 MB hidden files that stayed for good."""
    out = tmp_path / "exports"
    out.mkdir()
    stale = out / f".model.{_dead_pid()}-0123abcd.partial.keras"
    stale.write_bytes(b"half a model")
    live = out / f".model.{os.getpid()}-0123abcd.partial.keras"  # a writer still at work
    live.write_bytes(b"being written")
    result = cli("export", tiny_runs[0], "--format", "keras", "--out", out / "model.keras")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [live.name, "model.keras", "model.keras.json"]


def test_a_killed_writers_file_is_never_read_as_an_image(cli, default_run, tmp_path, number):
    Image.fromarray(number[0]).save(tmp_path / "a.png")
    shutil.copy(tmp_path / "a.png", tmp_path / f".scan.{_dead_pid()}-0123abcd.partial.png")
    result = cli("read", default_run[0], tmp_path)
    assert result.returncode == 0
    assert "1 file: 1 read" in result.stdout
    assert "an unfinished write" in result.stderr


@pytest.mark.parametrize("kind", ["ensemble", "prune"])
def test_an_unfinished_run_names_the_command_that_made_it(cli, conv_runs, tmp_path, kind):
    """After kill -9 of prune or ensemble, evaluate said 'resume it with mnistlab train'."""
    run = tmp_path / kind
    shutil.copytree(conv_runs["ensemble"] if kind == "ensemble" else conv_runs["cnn"], run)
    (run / runs.METRICS).unlink()  # as a kill before the end leaves it
    if kind == "prune":
        record = runs.read_json(run / runs.CONFIG)
        record["pruned"] = {"parent": "elsewhere"}
        runs.write_json(run / runs.CONFIG, record)
    result = cli("evaluate", run)
    assert result.returncode == 2
    assert f"unfinished run (no metrics.json); run mnistlab {kind} again" in result.stderr

"""The run directory: its file names, atomic writes, and whether a run is finished.

A run is finished when metrics.json exists; it is written last, so a run killed at any
point before that is recognisably incomplete and is resumed, never mistaken for done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import importlib.metadata
import json
import os
import platform
import re
import secrets
import shutil
import typing
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from mnistlab.config import ConfigError, EnsembleConfig, TrainConfig
from mnistlab.errors import UserError, first_line

CONFIG = "config.json"
HISTORY = "history.json"
METRICS = "metrics.json"
BEST_MODEL = "best_model.keras"
FINAL_MODEL = "final_model.keras"
FINAL_MODEL_H5 = "final_model.h5"
TENSORBOARD = "tensorboard"
# Written by `mnistlab evaluate`; for another model or data set, under EVALUATIONS/<name>/.
EVALUATION = "evaluation.json"
FIGURES = "figures"
REPORT = "report.html"
MODEL_CARD = "model_card.md"
EVALUATIONS = "evaluations"
# Written by `mnistlab export`: <model>.onnx, <model>.int8.onnx, <model>.keras, ...
EXPORTS = "exports"
# Training state for resuming; deleted once the run is finished.
BACKUP = "backup"
EARLY_STOPPING_STATE = "early_stopping"
# Locked by the process writing the run; holds its PID.
LOCK = ".lock"
# What `mnistlab adapt` adds to a copy of a run: the reader's line models fitted to a
# user's documents, and reader.json (its record, written last: the reader is done).
READER = "reader"
READER_RECORD = "reader.json"
ADAPT_CONFIG = "adapt.json"  # in reader/, first: what is being adapted, for a resume

DEFAULT_ROOT = Path("runs")
# Temporary files are named .<stem>.<pid>-<random>.partial<suffix>; never a result.
PARTIAL_MARK = ".partial"
_PARTIAL_NAME = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}\.partial")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# The command that made a run of each kind: an unfinished one is finished by running it again.
MADE_BY = {"train": "mnistlab train", "ensemble": "mnistlab ensemble", "prune": "mnistlab prune"}


class RunError(UserError, RuntimeError):
    """A run directory that cannot be used for what was asked."""


@contextlib.contextmanager
def locked(run_dir: Path, doing: str = "trained") -> Iterator[Path]:
    """Hold the run folder (created if need be) for this process, or fail at once with a
    RunError that names the process holding it.

    An flock: the kernel releases it when its process ends, however it ends, so the lock
    of a killed run never stands in the way of resuming it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a run folder; choose another run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{run_dir} is being {doing} by PID {_pid_in(fd)}") from None
        remove_stale_partials(run_dir)
        with space_for(run_dir):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield run_dir
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def space_for(path: Path) -> Iterator[None]:
    """A full disk (or quota) while writing `path` is a RunError that names it; the writers'
    temporary files are gone by then (atomic_path removes its own)."""
    try:
        yield
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        raise RunError(f"no space left on the device for {path}; free some and run again") from None


def remove_stale_partials(folder: Path) -> None:
    """Remove the temporary files that writers killed mid-write left in `folder`: each
    names its writer's PID, and one whose process is gone is garbage. (Writers on other
    machines sharing the folder cannot be told apart by PID: one machine's runs only.)"""
    with contextlib.suppress(OSError):  # a folder that cannot be listed has none to clean
        for entry in os.scandir(folder):
            pid = partial_pid(entry.name)
            if pid is None or alive(pid):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def partial_pid(name: str) -> int | None:
    """The writer's PID in an atomic_path temporary name, None for any other name."""
    match = _PARTIAL_NAME.match(name)
    return int(match.group(1)) if match else None


def alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (an exited, unreaped one does not)."""
    if pid <= 0:  # no pid recorded; and kill(-1 or 0) would address many processes
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return not _exited(pid)


def _exited(pid: int) -> bool:
    """Whether `pid` is a zombie: exited, not yet reaped (a killed child, until its parent
    waits for it), which kill(pid, 0) cannot tell from a live process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):  # no /proc (macOS), or gone meanwhile
        return False


def holder(run_dir: Path) -> str | None:
    """The PID of the process that holds the run folder's lock; None if none does."""
    path = Path(run_dir) / LOCK
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _pid_in(fd)
    finally:
        os.close(fd)


def _pid_in(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The block may write a file or a folder (a SavedModel) there. What killed writers left
    beside it before is removed first.
    """
    path = Path(path)
    remove_stale_partials(path.parent)
    tmp = partial_path(path)
    try:
        with space_for(path):
            yield tmp
            if tmp.is_dir() and path.is_dir():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def partial_path(path: Path) -> Path:
    """A temporary name beside `path` that names this process (for remove_stale_partials)
    and keeps the suffix, from which Keras picks the format."""
    # Not mkstemp: it makes files private (0600); these should follow the umask like any other.
    return path.with_name(
        f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_MARK}{path.suffix}"
    )


def int8_path(onnx_path: Path) -> Path:
    """Where `export --quantize` puts the int8 model of a float ONNX export."""
    return onnx_path.with_name(f"{onnx_path.stem}.int8.onnx")


def export_record_path(export_path: Path) -> Path:
    """The record (config and check) that `mnistlab export` writes beside an export."""
    return export_path.with_name(f"{export_path.name}.json")


def export_record(onnx_path: Path) -> tuple[Path | None, float | None]:
    """(run folder, test accuracy) of an exported ONNX file, float or int8, from its
    export record; (None, None) for an ONNX file mnistlab did not write."""
    onnx_path = Path(onnx_path)
    if onnx_path.name.endswith(".int8.onnx"):
        float_path = onnx_path.with_name(onnx_path.name.removesuffix(".int8.onnx") + ".onnx")
        record_path, key = export_record_path(float_path), "int8"
    else:
        record_path, key = export_record_path(onnx_path), None
    if not record_path.is_file():
        return None, None
    record = read_json(record_path)
    accuracy = record[key]["accuracy"] if key else record["export_accuracy"]
    return Path(record["config"]["run"]), accuracy


def write_json(path: Path, obj: typing.Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_bytes(path: Path, content: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def read_json(path: Path) -> typing.Any:
    """A JSON file mnistlab wrote; a RunError naming the file if it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise RunError(f"{path}: damaged, not valid JSON ({first_line(e)})") from None


KINDS = ("train", "ensemble")


@dataclasses.dataclass(frozen=True)
class Run:
    """A run folder's records, read and checked once: what every reader of a run uses."""

    path: Path
    # A TrainConfig for a trained run, an EnsembleConfig for an ensemble.
    config: TrainConfig | EnsembleConfig
    data_source: str
    data_sha256: str
    # When and with what it was made: created, mnistlab_version, keras_version, backend...
    provenance: dict[str, str] = dataclasses.field(repr=False)
    # metrics.json; None while the run is unfinished.
    metrics: dict[str, typing.Any] | None
    # history.json: one dict of Keras logs per finished epoch (empty for an ensemble).
    history: list[dict[str, typing.Any]] = dataclasses.field(repr=False)

    @property
    def kind(self) -> str:
        return "ensemble" if isinstance(self.config, EnsembleConfig) else "train"

    @property
    def preset(self) -> str:
        """What made the run: its preset, or "ensemble"."""
        return self.config.preset if isinstance(self.config, TrainConfig) else "ensemble"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return self.metrics is not None

    @functools.cached_property
    def model(self) -> typing.Any:
        """The run's final Keras model (as TrainConfig.final_weights says), loaded on first use.

        A run that `mnistlab.train` has just made holds the model it trained.
        """
        from mnistlab.models import load_model  # Keras: seconds to import, so only here

        return load_model(self.path / FINAL_MODEL)


def run_record(
    config: TrainConfig | EnsembleConfig, source: str, sha256: str, backend: str
) -> dict[str, typing.Any]:
    """What config.json holds: enough to rebuild the model and reproduce the run."""
    return {
        "kind": "ensemble" if isinstance(config, EnsembleConfig) else "train",
        "config": config.to_dict(),
        "data_source": source,
        "data_sha256": sha256,
        "mnistlab_version": importlib.metadata.version("mnistlab"),
        **_versions(backend),
        "backend": backend,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu(),
        "cpu_count": os.cpu_count(),
        "created": datetime.now().isoformat(timespec="seconds"),
    }


# "Same seed, same result" holds for the same versions of these (and the same CPU).
_PACKAGES = {"jax": ("jax", "jaxlib"), "tensorflow": ("tensorflow",), "torch": ("torch",)}


def _versions(backend: str) -> dict[str, str]:
    names = ("keras", "numpy", *_PACKAGES.get(backend, ()))
    return {f"{name}_version": importlib.metadata.version(name) for name in names}


def _cpu() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def open_run(run_dir: Path, finished: bool = True) -> Run:
    """The run in `run_dir`, its records checked; a RunError if it is not a (finished) run."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RunError(f"{run_dir}: not a mnistlab run (no {CONFIG})")
    if finished and not is_finished(run_dir):
        raise RunError(
            f"{run_dir}: unfinished run (no {METRICS}); run {made_by(run_dir)} again to finish it"
        )
    record = _read_record(run_dir / CONFIG)
    history_path = run_dir / HISTORY
    history = read_json(history_path) if history_path.is_file() else []
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise RunError(f"{history_path}: damaged, not a list of epochs")
    return Run(
        path=run_dir,
        config=record.pop("config"),
        data_source=record.pop("data_source"),
        data_sha256=record.pop("data_sha256"),
        provenance=record,
        metrics=_read_metrics(run_dir / METRICS) if is_finished(run_dir) else None,
        history=history,
    )


def made_by(run_dir: Path) -> str:
    """The command that made a run folder, from its config.json (train when unreadable)."""
    try:
        record = json.loads((Path(run_dir) / CONFIG).read_text())
        kind = "prune" if "pruned" in record else record.get("kind", "train")
    except (OSError, ValueError, AttributeError):
        kind = "train"
    return MADE_BY.get(kind, MADE_BY["train"])


def as_run(run: Run | Path) -> Run:
    """A Run as it is, or the finished run in a folder: for callers that take either."""
    return run if isinstance(run, Run) else open_run(run)


def _read_record(path: Path) -> dict[str, typing.Any]:
    """config.json with its config rebuilt as the dataclass of its kind."""
    record = read_json(path)
    if not (
        isinstance(record, dict)
        and isinstance(record.get("config"), dict)
        and isinstance(record.get("data_sha256"), str)
        and isinstance(record.get("data_source"), str)
    ):
        raise RunError(f"{path}: damaged, not a mnistlab run config (no config or data)")
    config = record["config"]
    # Runs of mnistlab 0.1.0 name no kind; their ensembles say preset "ensemble".
    kind = record.pop("kind", "ensemble" if "members" in config else "train")
    if kind == "ensemble":
        config = {k: v for k, v in config.items() if k != "preset"}
    try:
        record["config"] = (EnsembleConfig if kind == "ensemble" else TrainConfig).from_dict(config)
    except ConfigError as e:
        raise RunError(f"{path}: damaged, a config mnistlab cannot use ({e})") from None
    return record


def _read_metrics(path: Path) -> dict[str, typing.Any]:
    """A finished run's metrics.json, checked for what every reader of it needs."""
    metrics = read_json(path)
    numbers = ("test_accuracy", "test_loss", "epochs_run", "training_seconds")
    if not (
        isinstance(metrics, dict) and all(isinstance(metrics.get(k), (int, float)) for k in numbers)
    ):
        raise RunError(f"{path}: damaged, lacks one of {', '.join(numbers)}")
    return metrics


def new_run_dir(root: Path, preset: str, now: datetime | None = None) -> Path:
    """A fresh `root/<YYYYmmdd-HHMMSS>-<preset>` path; a suffix keeps same-second runs apart."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / f"{stamp}-{preset}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = Path(root) / f"{stamp}-{preset}-{n}"
    return candidate


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / METRICS).is_file()


def start(run_dir: Path, record: dict[str, typing.Any]) -> bool:
    """Create the run with its config record, or check that an unfinished one matches it.

    Returns True when an interrupted run is being resumed. Only `config` and the data
    checksum must match: they decide what is trained; versions may change on a restart.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if is_finished(run_dir):
        raise RunError(f"{run_dir} is a finished run; choose another run folder")
    if config_path.is_file():
        saved = _read_record(config_path)
        saved_config = saved["config"].to_dict()
        differ = [k for k in record["config"] if saved_config.get(k) != record["config"][k]]
        if saved.get("data_sha256") != record["data_sha256"]:
            differ.append("data")
        if differ:
            raise RunError(
                f"{run_dir} holds an unfinished run with different {', '.join(differ)}; "
                "resume it with the same options or choose another run folder"
            )
        return True
    if run_dir.exists() and any(p.name != LOCK for p in run_dir.iterdir()):
        raise RunError(f"{run_dir} exists and is not a mnistlab run; choose another run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(config_path, record)
    return False


def finish(run_dir: Path, metrics: dict[str, typing.Any]) -> None:
    """Mark the run finished (metrics.json last), then drop the resume state it no longer
    needs, and its lock file: whoever opens a lock file from here on finds a finished run."""
    write_json(Path(run_dir) / METRICS, metrics)
    for name in (BACKUP, EARLY_STOPPING_STATE):
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)
    (Path(run_dir) / LOCK).unlink(missing_ok=True)


def is_resumable(run_dir: Path) -> bool:
    """An interrupted run that no process is writing: training it again resumes it."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG).is_file() and not is_finished(run_dir) and holder(run_dir) is None


def list_runs(root: Path) -> tuple[list[Run], list[RunError]]:
    """The finished runs under `root`, newest first, and why any damaged one was left out."""
    found, damaged = [], []
    for run_dir in finished_runs(root):
        try:
            found.append(open_run(run_dir))
        except RunError as e:
            damaged.append(e)
    return found, damaged


def finished_runs(root: Path) -> list[Path]:
    """Finished runs directly under `root`, newest first (by when metrics.json was written)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_finished(p)]
    return sorted(found, key=lambda p: (p / METRICS).stat().st_mtime, reverse=True)


def find_run(root: Path, config: TrainConfig, data_sha256: str) -> Run | None:
    """The newest finished run under `root` trained with this config on this data."""
    found, _damaged = list_runs(root)  # a damaged run matches nothing
    return next((r for r in found if r.config == config and r.data_sha256 == data_sha256), None)

"""Many image files at once: worker processes on this machine, each with the model loaded
once, and a results file that a killed run resumes (cluster.py takes the same Job to Ray).

A Job says what to do with a chunk of files and how to describe each answer; it pickles,
so that a worker process (or a Ray actor) builds its reader or predictor once and then
takes chunk after chunk. Workers send back descriptions (a JSON record, a line of text,
whether it is unsure), not the answers: a few hundred bytes a file.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import dataclasses
import fcntl
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import threadpoolctl

from mnistlab import backend
from mnistlab.errors import UserError

# (JSON record, text line, unsure): what the commands print of one file's answer.
Described = tuple[dict[str, typing.Any], str, bool]
# Chunks queued per worker beyond the one it works on: enough to keep it busy, few enough
# that Ctrl-C waits for little and a long folder's answers are not all held in memory.
QUEUED_PER_WORKER = 2
# How every record in a results file starts (json.dumps of {"file": ...}).
RECORD_START = b'{"file": '


@dataclasses.dataclass(frozen=True)
class Job:
    """`load()` builds what answers (once per process); `answer(loaded, paths)` gives each
    path's answer or UserError, in order; `describe(answer)` makes it printable. All three
    are module-level functions or partials of them, so that the Job pickles."""

    load: Callable[[], typing.Any]
    answer: Callable[[typing.Any, list[Path]], list]
    describe: Callable[[typing.Any], Described]
    chunk: int  # files per call of `answer` (one model batch)
    columns: dict[str, str]  # the record's scalar fields and their Arrow types, for Ray

    def run(self, loaded: typing.Any, paths: list[Path]) -> list[Described | UserError]:
        answers = self.answer(loaded, paths)
        return [a if isinstance(a, UserError) else self.describe(a) for a in answers]


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's)."""
    return len(os.sched_getaffinity(0))


def described(job: Job, files: list[Path], jobs: int) -> Iterator[Described | UserError]:
    """Each file's description or error, in the files' order: in this process when one
    worker would do (one job, or one chunk of files), else in `jobs` worker processes."""
    chunks = [files[i : i + job.chunk] for i in range(0, len(files), job.chunk)]
    workers = min(jobs, len(chunks))
    if workers <= 1:
        loaded = job.load() if chunks else None
        for chunk in chunks:
            yield from job.run(loaded, chunk)
        return
    yield from _in_workers(job, chunks, workers)


def _in_workers(job: Job, chunks: list[list[Path]], workers: int) -> Iterator:
    # spawn: a forked copy of a process that has started JAX's threads can deadlock.
    pool = concurrent.futures.ProcessPoolExecutor(
        workers,
        multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(job, max(1, usable_cores() // workers)),
    )
    pending: list[concurrent.futures.Future] = []
    try:
        waiting = iter(chunks)
        for chunk in waiting:  # a bounded queue: submit as answers are taken
            pending.append(pool.submit(_work, chunk))
            if len(pending) < workers * (1 + QUEUED_PER_WORKER):
                continue
            yield from _result(pending.pop(0))
        while pending:
            yield from _result(pending.pop(0))
    finally:  # Ctrl-C, a closed generator: no new chunk starts; workers end after theirs
        pool.shutdown(wait=True, cancel_futures=True)


def _result(future: concurrent.futures.Future) -> list:
    try:
        return future.result()
    except concurrent.futures.process.BrokenProcessPool as e:
        raise UserError(
            "a worker process died (out of memory? killed?); run again with fewer --jobs"
        ) from e


_loaded: typing.Any = None
_job: Job | None = None


def _start_worker(job: Job, threads: int) -> None:
    """In each worker: its share of the cores (BLAS and XLA would each start a thread per
    core in every worker, and the workers then slow each other down: 2 workers read 3x
    slower than one); Ctrl-C is the parent's to handle; the worker ends when the parent
    does, even by SIGKILL; the model loads once."""
    global _loaded, _job
    limit_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    _job, _loaded = job, job.load()


def limit_threads(threads: int) -> None:
    """BLAS to `threads` threads; with one, XLA's CPU kernels too; Keras' backend chosen
    as the CLI chooses it (all before Keras and JAX start, in a worker's job.load())."""
    backend.choose()
    threadpoolctl.threadpool_limits(threads)
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def _exit_with_parent() -> None:
    # The parent's sentinel becomes ready when it ends, however it ends.
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


def _work(chunk: list[Path]) -> list[Described | UserError]:
    return _job.run(_loaded, chunk)


class Results:
    """A JSON-lines file of one record per file ({"file": name, ...}), written as answers
    come and resumable: opened again, it keeps the whole records already there (a torn
    last line, from a kill mid-write, is cut off) and says which files they cover. A file
    with anything else in it is refused, never cut: it is not ours. One process at a
    time: a second is refused while the first holds its lock."""

    def __init__(self, path: Path):
        self.path = path
        if path.exists() and not path.is_file():  # a folder; a FIFO would block
            raise UserError(f"--out {path}: not a regular file; name a file")
        # Unbuffered: a failed write leaves nothing in a buffer to land after the cut.
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self._fd)
            raise UserError(f"--out {path}: another process is writing it") from e
        try:
            self.done = self._whole_records()
        except UserError:
            os.close(self._fd)
            raise

    def _whole_records(self) -> set[str]:
        """The files that the records name; a torn last record is cut off."""
        done, kept = set(), 0
        with open(self.path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n") and RECORD_START.startswith(line[: len(RECORD_START)]):
                    break  # torn: the start of a record, cut short by a kill
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict) or not isinstance(record.get("file"), str):
                    raise UserError(
                        f"--out {self.path}: line {number} is not a record of mnistlab's; "
                        "name a new file, or the results file of the same command"
                    )
                done.add(record["file"])
                kept += len(line)
        os.ftruncate(self._fd, kept)
        return done

    def write(self, records: list[dict]) -> None:
        """Append records and make them durable: a kill after this loses none of them."""
        kept = os.lseek(self._fd, 0, os.SEEK_END)
        data = memoryview(b"".join(json.dumps(r).encode() + b"\n" for r in records))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as e:  # a full disk: no torn record left behind
            os.ftruncate(self._fd, kept)
            raise UserError(f"--out {self.path}: {e.strerror}") from e
        self.done.update(r["file"] for r in records)

    def close(self) -> None:
        os.close(self._fd)  # and its lock

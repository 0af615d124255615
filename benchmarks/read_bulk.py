"""Bulk reading: `mnistlab read RUN FOLDER --out results.jsonl` over synthetic five-digit
numbers, with 1 and 2 worker processes and on a local Ray cluster with 1 and 2 actors,
side by side in one run; a run killed halfway and resumed; worker memory over many files.

Usage: python benchmarks/read_bulk.py RUN [--files 2000] [--memory-files 20000]

Throughput is given two ways: over the whole command (start-up included: Python, Keras,
the model in every worker, Ray's processes) and steady, from the first tenth of the
records written to the last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import record
from PIL import Image

from mnistlab.data import load_digits_set
from mnistlab.read import documents

SEED = 3
SPEEDUP = 1.7  # --jobs 2 against --jobs 1
RAY_WITHIN = 0.2  # Ray with 2 actors against --jobs 2
SPIN = 20_000  # sum(range(1000)) per spin: about a second
POLL = 0.05  # seconds between looks at the results file and the workers' memory
SETTLE = 5  # seconds after each command, for its processes (Ray's) to be gone


def make_images(folder: Path, n: int) -> None:
    digits = load_digits_set()
    for i, d in enumerate(documents.number_strings(digits.x, digits.y, n, seed=SEED, length=5)):
        Image.fromarray(d.image).save(folder / f"n{i:05d}.png")


def command(run: Path, folder: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "mnistlab", "read", str(run), str(folder), "--out", str(out),
            *options]  # fmt: skip


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def timed(argv: list[str], out: Path, n: int, kill_at: int | None = None) -> dict:
    """Run the command, watching its results file: whole and steady files/s; with
    `kill_at`, SIGKILL it once that many records are written."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tenth = None
    while process.poll() is None:
        written = lines(out)
        if tenth is None and written >= n // 10:
            tenth = (time.perf_counter(), written)
        if kill_at is not None and written >= kill_at:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return {"killed_at": written}
        time.sleep(POLL)
    end = time.perf_counter()
    assert process.returncode == 0, process.stderr.read()
    steady = (n - tenth[1]) / (end - tenth[0])
    return {"seconds": end - start, "whole": n / (end - start), "steady": steady}


def worker_memory(run: Path, folder: Path, out: Path, n: int, repeat: int) -> dict:
    """RSS of each --jobs 2 worker after the first pass over the images and at the end of
    `repeat` passes (the folder named `repeat` times)."""
    argv = command(run, *[folder] * repeat, out, "--jobs", "2")
    argv = [a for a in argv if a != str(out) and a != "--out"]  # lines to /dev/null
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: dict[int, list[float]] = {}
    printed = [0]

    def count() -> None:
        for line in process.stdout:
            printed[0] += line.startswith(str(folder))

    threading.Thread(target=count, daemon=True).start()
    first_pass: dict[int, float] = {}
    while process.poll() is None:
        for worker in workers_of(process.pid):
            rss = rss_mib(worker)
            if rss:
                seen.setdefault(worker.pid, []).append(rss)
                if printed[0] >= n:
                    first_pass.setdefault(worker.pid, rss)
        time.sleep(POLL * 10)
    workers = [pid for pid in seen if len(seen[pid]) > 5 and pid in first_pass]
    return {
        "files": printed[0],
        "after_first": [round(first_pass[p]) for p in workers],
        "at_end": [round(seen[p][-1]) for p in workers],
        "peak": [round(max(seen[p])) for p in workers],
    }


def workers_of(pid: int) -> list[psutil.Process]:
    """The worker processes of `pid` (not multiprocessing's resource tracker)."""
    found = []
    for child in psutil.Process(pid).children():
        with contextlib.suppress(psutil.Error):  # ended meanwhile
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


def rss_mib(process: psutil.Process) -> float | None:
    try:
        return process.memory_info().rss / 2**20
    except psutil.Error:
        return None


def spin(_: int) -> float:
    start = time.perf_counter()
    for _ in range(SPIN):
        sum(range(1000))
    return time.perf_counter() - start


def ceiling() -> float:
    """What this machine gives two processes of pure Python work against one: the most
    --jobs 2 can gain here."""
    seconds = {}
    for n in (1, 2):
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            pool.map(spin, range(n))  # started
            start = time.perf_counter()
            pool.map(spin, range(8))
            seconds[n] = time.perf_counter() - start
    return seconds[1] / seconds[2]


def spread(values: list[float], unit: str = "", places: int = 1, sign: str = "") -> str:
    """The median, and the lowest and highest in brackets."""

    def show(v: float) -> str:
        return f"{v:{sign}.{places}f}{unit}"

    low, high = min(values), max(values)
    return f"{show(statistics.median(values))} ({show(low)} to {show(high)})"


def readings(path: Path) -> list[tuple]:
    return [(r["file"], r["text"], r["confidence"])
            for r in map(json.loads, path.read_text().splitlines())]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--memory-files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="each way measured this often")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="read-bulk-"))
    folder = work / "images"
    folder.mkdir()
    make_images(folder, args.files)
    n = args.files
    ways = {
        "--jobs 1": ["--jobs", "1"],
        "--jobs 2": ["--jobs", "2"],
        "--ray --jobs 1 (local cluster, 1 actor)": ["--ray", "--jobs", "1"],
        "--ray --jobs 2 (local cluster, 2 actors)": ["--ray", "--jobs", "2"],
    }
    # Rounds of every way in turn: this machine's speed drifts by a third from minute to
    # minute (its neighbours), so each way is measured in every round and compared within it.
    measured: dict[str, list[dict]] = {name: [] for name in ways}
    outs, machine = {}, []
    for turn in range(args.rounds):
        machine.append(ceiling())
        for i, (name, options) in enumerate(ways.items()):
            out = outs[name] = work / f"{turn}-{i}.jsonl"
            measured[name].append(timed(command(args.run, folder, out, *options), out, n))
            print(name, {k: round(v, 2) for k, v in measured[name][-1].items()})
            time.sleep(SETTLE)
    print("two processes of pure Python work against one", machine)
    one, two = measured["--jobs 1"], measured["--jobs 2"]
    ray_two = measured["--ray --jobs 2 (local cluster, 2 actors)"]
    speedups = [b["steady"] / a["steady"] for a, b in zip(one, two, strict=True)]
    ray_gaps = [r["steady"] / b["steady"] - 1 for b, r in zip(two, ray_two, strict=True)]

    resumed_out = work / "resumed.jsonl"
    argv = command(args.run, folder, resumed_out, "--jobs", "2")
    killed = timed(argv, resumed_out, n, kill_at=n // 2)
    timed(argv, resumed_out, n)
    got, want = readings(resumed_out), readings(outs["--jobs 2"])
    files_once = len(got) == n and len({f for f, _, _ in got}) == n
    equal = got == want
    print("resume", killed, files_once, equal)

    repeat = max(1, args.memory_files // n)
    memory = worker_memory(args.run, folder, work / "memory.jsonl", n, repeat)
    print("memory", memory)

    rows = [
        [name, spread([m["seconds"] for m in ms]), spread([m["whole"] for m in ms]),
         spread([m["steady"] for m in ms]),
         spread([m["steady"] / a["steady"] for m, a in zip(ms, one, strict=True)], "x", 2)]
        for name, ms in measured.items()
    ]  # fmt: skip
    table = {
        "title": f"`mnistlab read RUN FOLDER --out results.jsonl`, {n:,} five-digit images: "
        f"median (lowest-highest) of {args.rounds} rounds",
        "columns": ["how", "seconds", "files/s, whole command", "files/s, steady",
                    "steady, against --jobs 1 in the same round"],
        "rows": rows,
    }  # fmt: skip
    resume = {
        "title": "Killed with SIGKILL halfway, then the same command again (`--jobs 2`)",
        "columns": ["records when killed", "every file exactly once", "readings equal to an "
                    "uninterrupted run's"],
        "rows": [[killed["killed_at"], "yes" if files_once else "no", "yes" if equal else "no"]],
    }  # fmt: skip
    mem = {
        "title": f"Each `--jobs 2` worker's resident memory (MiB) over {memory['files']:,} files",
        "columns": ["worker", f"after {n:,} files", "at the end", "peak"],
        "rows": [[i + 1, a, b, c] for i, (a, b, c) in enumerate(
            zip(memory["after_first"], memory["at_end"], memory["peak"], strict=True))],
    }  # fmt: skip
    rows.append(["two processes of pure Python work (the machine's ceiling)", "", "", "",
                 spread(machine, "x", 2)])  # fmt: skip
    speedup, ray_gap = statistics.median(speedups), statistics.median(ray_gaps)
    pairs = zip(memory["after_first"], memory["at_end"], strict=True)
    growth = max((end - first for first, end in pairs), default=0)
    targets = [
        {"target": f"--jobs 2 >= {SPEEDUP}x --jobs 1 (steady, median of the rounds)",
         "measured": spread(speedups, "x", 2), "met": speedup >= SPEEDUP},
        {"target": f"Ray, 2 actors, within {RAY_WITHIN:.0%} of --jobs 2 (steady, median)",
         "measured": spread([100 * g for g in ray_gaps], "%", 0, "+"),
         "met": abs(ray_gap) <= RAY_WITHIN},
        {"target": "killed at 50% and resumed: every file once, readings equal",
         "measured": f"{'yes' if files_once else 'no'}, {'yes' if equal else 'no'}",
         "met": files_once and equal},
        {"target": f"no memory growth over {memory['files']:,} files",
         "measured": f"{growth:+.0f} MiB from the first {n:,} files to the end",
         "met": growth <= 50},
    ]  # fmt: skip
    record.write("read_bulk", [table, resume, mem], targets)


if __name__ == "__main__":
    main()

"""Where a benchmark's figures go: benchmarks/results/<name>.json, with what was run and on
what, so that the docs' results pages are made from data (docs/hooks.py renders them)."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{len(os.sched_getaffinity(0))} CPU cores ({cpu}), {memory:.0f} GiB"


def write(name: str, tables: list[dict], targets=(), notes=(), path: Path | None = None) -> Path:
    """tables: [{"title", "columns", "rows"}]; targets: [{"target", "measured", "met"}];
    written to results/<name>.json, or `path`."""
    versions = {"python": platform.python_version()}
    for package in ("mnistlab", "keras", "jax", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    record = {
        "benchmark": f"benchmarks/{Path(sys.argv[0]).name}",
        "command": shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": versions,
        "tables": tables,
        "targets": list(targets),
        "notes": list(notes),
    }
    path = Path(path) if path else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    print(f"figures: {path}")
    return path

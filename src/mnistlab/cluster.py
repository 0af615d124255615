"""A Job (bulk.py) on a Ray cluster, through Ray Data: a map_batches pool of actors,
each loading the model once, over a dataset of image paths or bytes.

Ray is an optional extra (`pip install 'mnistlab[ray]'`); it is imported here only.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Iterator
from pathlib import Path

from mnistlab.bulk import Described, Job, limit_threads
from mnistlab.errors import UserError

INSTALL = "pip install 'mnistlab[ray]'"
# The columns every answered row has, beside the Job's own (Arrow types).
COLUMNS = {"path": "string", "error": "string", "record": "string", "line": "string",
           "unsure": "bool"}  # fmt: skip


def ray_module():
    """Ray, or a UserError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise UserError(f"Ray is not installed; to use a Ray cluster: {INSTALL}") from e
    return ray


class Answerer:
    """A Ray Data actor: loads the Job's model once, then answers batch after batch."""

    def __init__(self, job: Job):
        limit_threads(1)  # an actor holds one CPU (num_cpus=1)
        self.job = job
        self.loaded = job.load()

    def __call__(self, batch: dict[str, typing.Any]):
        import pyarrow as pa

        paths = [str(p) for p in batch["path"]]
        # Bytes (ray.data.read_binary_files) where the actor cannot see the path itself.
        sources = list(batch["bytes"]) if "bytes" in batch else paths
        rows = {name: [] for name in (*COLUMNS, *self.job.columns)}
        for path, answer in zip(paths, self.job.run(self.loaded, sources), strict=True):
            error = isinstance(answer, UserError)
            record, line, unsure = ({"error": str(answer)}, "", False) if error else answer
            values = {"path": path, "error": str(answer) if error else None,
                      "record": json.dumps(record), "line": line, "unsure": unsure}  # fmt: skip
            for name in rows:
                rows[name].append(values[name] if name in values else record.get(name))
        types = {**COLUMNS, **self.job.columns}
        schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in types.items()])
        return pa.table(rows, schema=schema)


def answer_dataset(dataset, job: Job, concurrency: int):
    """The dataset (rows with "path", and "bytes" where read_binary_files made it) with
    each row answered: COLUMNS and the Job's. Rows keep the input's order where the
    dataset's context preserves it (`described` sets that)."""
    ray = ray_module()
    return dataset.map_batches(
        Answerer,
        fn_constructor_args=(job,),
        batch_size=job.chunk,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
    )


def described(
    job: Job, files: list[Path], address: str | None, workers: int | None
) -> Iterator[Described | UserError]:
    """Each file's description or error, in order, answered by `workers` actors (default:
    one per CPU of the cluster) on the Ray cluster at `address` (None: the one this
    machine runs, else a new local one, stopped at the end)."""
    ray = ray_module()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        # A dataset takes the context as it is when made: set it first.
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Paths, not bytes: on one machine (or a shared file system) each actor reads
        # its own files. from_items needs no read task, so every CPU can hold an actor.
        dataset = ray.data.from_items([{"path": str(p)} for p in files])
        for row in answer_dataset(dataset, job, actors).iter_rows():
            if row["error"] is not None:
                yield UserError(row["error"])
            else:
                yield json.loads(row["record"]), row["line"], bool(row["unsure"])
    finally:
        if started:
            ray.shutdown()

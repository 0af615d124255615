"""What a long command is doing, for a person watching a terminal: named steps with their
seconds, and progress bars. Where stderr is not a terminal (a pipe, a log, a notebook)
nothing is shown, so that output stays what scripts parse."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


def on_terminal() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """'what ...' before the step, '... done (1.2 s)' after it."""
    if not on_terminal():
        yield
        return
    print(f"{what} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        print(" failed", file=sys.stderr, flush=True)
        raise
    print(f" done ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)


def bar(total: int, unit: str):
    """A tqdm bar that clears itself when done; none for one item or off a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, leave=False, disable=None if total > 1 else True)

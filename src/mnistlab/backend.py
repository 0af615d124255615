"""Which Keras backend: JAX, unless the user chose another that is installed.

Keras reads its backend once, when first imported, from $KERAS_BACKEND or else from
keras.json. Keras writes "tensorflow" into a missing keras.json itself, on its first
import, so that value there is no sign of a choice; any other value is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

DEFAULT = "jax"
# The module each Keras backend needs.
MODULES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch", "numpy": "numpy"}
KERAS_DEFAULT = "tensorflow"
# JAX's compiled programs kept between processes; past this size the oldest go.
CACHE_LIMIT = 2**30
# What Keras imports on its own import, when installed, only for parts mnistlab never
# calls (its scikit-learn wrappers, its image-gallery plot): 1.2 s of a 3 s import.
KERAS_EXTRAS = ("sklearn", "matplotlib.pyplot")


def choose() -> str | None:
    """Set $KERAS_BACKEND (and, for JAX, its compile cache) before Keras is imported; a
    notice when the user's choice had to be set aside (to show them), else None."""
    if "keras" in sys.modules:  # too late to choose: Keras has read its backend
        return None
    backend, notice = _chosen()
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        _compile_cache()
    return notice


def import_keras_lean() -> None:
    """Import Keras with KERAS_EXTRAS hidden from it, so a command starts sooner. Only for
    a process mnistlab owns (the CLI's): in a user's own, Keras' scikit-learn wrappers
    must find scikit-learn. Our own later imports of the extras are not affected."""
    if "keras" in sys.modules:
        return
    hidden = [name for name in KERAS_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError, as when not installed
    try:
        import keras
    except ImportError:  # a Keras that needs them after all: import it with them, below
        pass
    finally:
        for name in hidden:
            del sys.modules[name]
    if "keras" not in sys.modules:
        import keras  # noqa: F401


def _chosen() -> tuple[str, str | None]:
    """(the backend to use, a notice when the user's choice had to be set aside)."""
    wanted, where = os.environ.get("KERAS_BACKEND"), "the environment variable KERAS_BACKEND"
    if not wanted:
        path = _keras_json()
        wanted, where = _configured(path), str(path)
        if wanted == KERAS_DEFAULT:
            wanted = None
    if not wanted:
        return DEFAULT, None
    module = MODULES.get(wanted)
    if module is not None and importlib.util.find_spec(module) is not None:
        return wanted, None
    return DEFAULT, (
        f"{where} names the Keras backend {wanted!r}, which is not installed here; using "
        f"{DEFAULT} (to choose another, change {where})"
    )


def _keras_json() -> Path:
    """Where Keras looks for keras.json (its own rule: $KERAS_HOME, else ~/.keras)."""
    home = os.environ.get("KERAS_HOME") or Path("~").expanduser() / ".keras"
    return Path(home) / "keras.json"


def _configured(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def cache_folder() -> Path:
    """Where JAX keeps compiled programs: $JAX_COMPILATION_CACHE_DIR (JAX's own variable),
    else mnistlab's folder in the user's cache."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    home = os.environ.get("XDG_CACHE_HOME") or Path("~").expanduser() / ".cache"
    return Path(home) / "mnistlab" / "jax"


def _compile_cache() -> None:
    """Keep JAX's compiled programs on disk, so that a process compiling what an earlier one
    did loads it instead: 3-5 s of every `train` (benchmarks/vs_published.py) and of every
    tuning trial of an architecture already tried. JAX_ENABLE_COMPILATION_CACHE=false
    turns it off."""
    folder = cache_folder()
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    # Cache every program: the default (1 s of compilation at least) skips the many small
    # ones (initialisers, metrics) that together take seconds.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    quiet_cache_warnings()
    _trim(folder, CACHE_LIMIT)


def quiet_cache_warnings() -> None:
    """JAX writes cache entries in place: one a kill cut short is unreadable, and JAX then
    warns and compiles afresh, as with no cache. Nothing for the user to do: no warning."""
    warnings.filterwarnings("ignore", message="Error reading persistent compilation cache")


def _trim(folder: Path, limit: int) -> None:
    """Past `limit` bytes, remove the least recently written entries down to half of it.

    (JAX's own limit needs the filelock package, and locks every read.)
    """
    try:
        entries = [(f.stat().st_mtime, f.stat().st_size, f) for f in folder.iterdir()]
    except OSError:  # no folder yet, or one another process is trimming
        return
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return
    for _, size, path in sorted(entries):
        if total <= limit // 2:
            break
        path.unlink(missing_ok=True)
        total -= size

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
from pathlib import Path

DEFAULT = "jax"
# The module each Keras backend needs.
MODULES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch", "numpy": "numpy"}
KERAS_DEFAULT = "tensorflow"


def choose() -> str | None:
    """Set $KERAS_BACKEND before Keras is imported; a notice when the user's choice had to
    be set aside (to show them), else None."""
    if "keras" in sys.modules:  # too late to choose: Keras has read its backend
        return None
    wanted, where = os.environ.get("KERAS_BACKEND"), "the environment variable KERAS_BACKEND"
    if not wanted:
        path = _keras_json()
        wanted, where = _configured(path), str(path)
        if wanted == KERAS_DEFAULT:
            wanted = None
    if not wanted:
        os.environ["KERAS_BACKEND"] = DEFAULT
        return None
    module = MODULES.get(wanted)
    if module is not None and importlib.util.find_spec(module) is not None:
        os.environ["KERAS_BACKEND"] = wanted
        return None
    os.environ["KERAS_BACKEND"] = DEFAULT
    return (
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

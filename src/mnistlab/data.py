"""Load MNIST (Keras npz or the original IDX files), check it, and split off validation.

Where the data comes from, in order: an explicit path, $MNISTLAB_DATA, then the Keras
download cache (~/.keras/datasets/mnist.npz), so a user with internet needs nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistlab.config import IMAGE_SHAPE, NUM_CLASSES
from mnistlab.errors import UserError

ENV_VAR = "MNISTLAB_DATA"
# The name that means scikit-learn's bundled 8x8 digits (UCI optdigits: 1,797 forms by 43
# writers) wherever a labelled digit set is asked for.
SKLEARN_DIGITS = "sklearn-digits"
# The file keras.datasets.mnist.load_data() downloads, with the checksum Keras pins.
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# IDX magic numbers: 0x0000, the uint8 type code 0x08, then the number of dimensions.
_IDX_MAGIC = {"x": 0x0803, "y": 0x0801}
# Original LeCun names; the files inside the original archives use a '.' before idx.
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataError(UserError, ValueError):
    """The data file is missing, damaged or not MNIST-shaped; the message says which."""


@dataclass(frozen=True)
class Mnist:
    """uint8 images (N, 28, 28) and uint8 labels (N,), with where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str

    @property
    def test(self) -> Digits:
        """The test split as a labelled digit set, to evaluate on."""
        return Digits(self.x_test, self.y_test, self.source, self.sha256)


def load_mnist(path: str | os.PathLike | None = None) -> Mnist:
    """Read and validate MNIST from `path`, else $MNISTLAB_DATA, else the Keras cache."""
    resolved = _resolve(path)
    if resolved.is_dir():
        files = _idx_files(resolved, IDX_NAMES)
        arrays = {key: _read_idx(file, _IDX_MAGIC[key[0]]) for key, file in files.items()}
    else:
        files = {"npz": resolved}
        arrays = _read_npz(resolved, [tuple(IDX_NAMES)])
    for split in ("train", "test"):
        _validate(resolved, f"x_{split}", arrays[f"x_{split}"], f"y_{split}", arrays[f"y_{split}"])
    return Mnist(**arrays, source=str(resolved), sha256=_sha256(files.values()))


@dataclass(frozen=True)
class Digits:
    """A labelled set of MNIST-style digits: uint8 images (N, 28, 28), uint8 labels (N,)."""

    x: np.ndarray
    y: np.ndarray
    source: str
    sha256: str


def load_digits_set(path: str | os.PathLike | None = None) -> Digits:
    """A labelled set to evaluate on: MNIST's test split, or any digits in the same formats.

    An npz may hold x_test/y_test or x/y; an IDX folder needs only the t10k pair. Without
    a path this is the MNIST test set, found as load_mnist finds it. SKLEARN_DIGITS
    names scikit-learn's 8x8 digits, made MNIST-style.
    """
    if str(path) == SKLEARN_DIGITS:
        from mnistlab.digit_sources import sklearn_digits  # Pillow and SciPy: only here

        x, y, sha256 = sklearn_digits()
        return Digits(x, y, SKLEARN_DIGITS, sha256)
    if path is None:
        return load_mnist().test
    resolved = _resolve(path)
    if resolved.is_dir():
        names = {"x": IDX_NAMES["x_test"], "y": IDX_NAMES["y_test"]}
        files = _idx_files(resolved, names)
        x, y = (_read_idx(files[key], _IDX_MAGIC[key]) for key in ("x", "y"))
        x_name, y_name = names.values()
    else:
        files = {"npz": resolved}
        arrays = _read_npz(resolved, [("x_test", "y_test"), ("x", "y")])
        (x_name, x), (y_name, y) = arrays.items()
    _validate(resolved, x_name, x, y_name, y)
    return Digits(x, y, str(resolved), _sha256(files.values()))


def scale(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]: what every model takes. In one step: the same
    numbers as a cast then a division, without a second array the size of the first to
    fault into memory (0.4 s of every training's start)."""
    return np.divide(x, np.float32(255), dtype=np.float32)


def class_counts(y: np.ndarray) -> list[int]:
    """How many labels of each digit, 0 to 9."""
    return np.bincount(y, minlength=NUM_CLASSES).tolist()


def _resolve(path: str | os.PathLike | None) -> Path:
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    resolved = Path(path) if path is not None else _keras_cached_file()
    if not resolved.exists():
        raise DataError(f"{resolved}: no such file or folder")
    return resolved


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out the last `fraction` of the samples, exactly as Keras' validation_split does."""
    n_train = int(len(x) * (1.0 - fraction))
    if n_train < 1 or n_train >= len(x):
        raise DataError(f"validation_split {fraction} leaves an empty split of {len(x)} images")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def _keras_cached_file() -> Path:
    import keras  # Imported here: only needed when no local copy is named.

    try:
        return Path(keras.utils.get_file("mnist.npz", origin=KERAS_ORIGIN, file_hash=KERAS_SHA256))
    except Exception as e:  # get_file raises a bare Exception on network errors.
        raise DataError(
            f"no data path given, ${ENV_VAR} unset, and the Keras download failed ({e}); "
            "give the path of a local mnist.npz or IDX folder (--data on the command line)"
        ) from e


def _read_npz(path: Path, layouts: list[tuple[str, ...]]) -> dict[str, np.ndarray]:
    """The arrays of the first layout (a tuple of array names) that the file holds."""
    try:
        with np.load(path, allow_pickle=False) as f:
            for keys in layouts:
                if all(k in f.files for k in keys):
                    return {k: f[k] for k in keys}
            missing = [k for k in layouts[0] if k not in f.files]
            raise DataError(
                f"{path}: not an MNIST npz, missing arrays {', '.join(missing)} "
                f"(found: {', '.join(f.files) or 'none'})"
            )
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: unreadable npz file ({e})") from e


def _idx_files(folder: Path, names: dict[str, str]) -> dict[str, Path]:
    files = {}
    for key, name in names.items():
        dotted = name.replace("-idx", ".idx")
        candidates = [folder / f"{stem}{gz}" for stem in (name, dotted) for gz in ("", ".gz")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(f"{folder}: missing {name} (or {name}.gz)")
        files[key] = found
    return files


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one IDX file: big-endian magic, one uint32 per dimension, then the bytes."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: unreadable ({e})") from e
    if len(raw) < 4:
        raise DataError(f"{path}: truncated, only {len(raw)} bytes")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DataError(f"{path}: not an IDX file of the expected kind (magic {magic:#06x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes but its header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _validate(path: Path, x_name: str, x: np.ndarray, y_name: str, y: np.ndarray) -> None:
    problem = None
    if x.dtype != np.uint8:
        problem = f"{x_name} has dtype {x.dtype}, expected uint8 pixels"
    elif x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        problem = f"{x_name} has shape {x.shape}, expected (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})"
    elif y.ndim != 1 or len(y) != len(x):
        problem = f"{y_name} has shape {y.shape}, expected ({len(x)},) to match {x_name}"
    elif not np.issubdtype(y.dtype, np.integer):
        problem = f"{y_name} has dtype {y.dtype}, expected integer labels"
    elif len(y) == 0:
        problem = f"{x_name} is empty"
    elif y.min() < 0 or y.max() >= NUM_CLASSES:
        problem = f"{y_name} has labels {y.min()}..{y.max()}, expected 0..9"
    if problem:
        raise DataError(f"{path}: {problem}")


def _sha256(files: Iterable[Path]) -> str:
    """Checksum of the npz file, or of the four IDX files in a fixed order."""
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()

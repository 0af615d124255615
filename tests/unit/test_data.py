"""The loader on tiny synthetic files: formats, checks and error messages."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from mnistlab.data import DataError, load_mnist, scale, split_validation

rng = np.random.default_rng(0)
ARRAYS = {
    "x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
    "y_train": rng.integers(0, 10, 12, dtype=np.uint8),
    "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
    "y_test": rng.integers(0, 10, 5, dtype=np.uint8),
}


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_idx_folder(folder, names, compress):
    folder.mkdir()
    for key, name in names.items():
        data = idx_bytes(ARRAYS[key])
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


LECUN = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DOTTED = {k: v.replace("-idx", ".idx") for k, v in LECUN.items()}


def assert_same_arrays(data):
    for key, expected in ARRAYS.items():
        np.testing.assert_array_equal(getattr(data, key), expected)


def test_npz_loads_with_its_checksum(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, **ARRAYS)
    data = load_mnist(path)
    assert_same_arrays(data)
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data.source == str(path)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("names", [LECUN, DOTTED], ids=["lecun", "dotted"])
def test_idx_folder_loads(tmp_path, names, compress):
    assert_same_arrays(load_mnist(write_idx_folder(tmp_path / "idx", names, compress)))


def test_env_var_is_used_without_a_path_and_a_path_beats_it(tmp_path, monkeypatch):
    good = tmp_path / "good.npz"
    np.savez(good, **ARRAYS)
    monkeypatch.setenv("MNISTLAB_DATA", str(good))
    assert load_mnist().source == str(good)
    with pytest.raises(DataError, match="no such file"):
        load_mnist(tmp_path / "elsewhere.npz")


def test_missing_idx_file_is_named(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", LECUN, compress=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist(folder)


def test_truncated_idx_file(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", LECUN, compress=False)
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"bytes but its header \(12, 28, 28\) needs"):
        load_mnist(folder)


def test_truncated_gzip(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", LECUN, compress=True)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: unreadable"):
        load_mnist(folder)


def test_labels_file_where_images_belong(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", LECUN, compress=False)
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(ARRAYS["y_train"]))
    with pytest.raises(DataError, match="not an IDX file of the expected kind"):
        load_mnist(folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_train": ARRAYS["x_train"].astype(np.float32)}, "x_train has dtype float32"),
        ({"x_test": np.zeros((5, 32, 32), np.uint8)}, r"x_test has shape \(5, 32, 32\)"),
        ({"y_train": ARRAYS["y_train"][:-1]}, "y_train has shape"),
        ({"y_test": np.full(5, 10, np.uint8)}, "labels 10..10, expected 0..9"),
        ({"y_test": np.zeros(5, np.float64)}, "expected integer labels"),
    ],
)
def test_arrays_that_are_not_mnist(tmp_path, change, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **{**ARRAYS, **change})
    with pytest.raises(DataError, match=message):
        load_mnist(path)


def test_npz_without_the_arrays_lists_what_is_missing(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x_train=ARRAYS["x_train"], weights=np.zeros(3))
    with pytest.raises(DataError, match="missing arrays y_train, x_test, y_test"):
        load_mnist(path)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04broken"])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"broken\.npz: unreadable npz file"):
        load_mnist(path)


def test_truncated_npz(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez_compressed(path, **ARRAYS)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"cut\.npz"):
        load_mnist(path)


def test_split_validation_holds_out_the_last_fraction():
    x, y = np.arange(100), np.arange(100) % 10
    (x_train, y_train), (x_val, y_val) = split_validation(x, y, 0.2)
    np.testing.assert_array_equal(x_train, np.arange(80))
    np.testing.assert_array_equal(x_val, np.arange(80, 100))
    np.testing.assert_array_equal(y_val, np.arange(80, 100) % 10)
    assert len(y_train) == 80


def test_split_validation_refuses_an_empty_split():
    with pytest.raises(DataError, match="empty split"):
        split_validation(np.arange(1), np.arange(1), 0.5)


def test_scale_gives_the_numbers_of_a_cast_then_a_division():
    # Every pixel value: a run trained before and after any change to scale() is the same.
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    scaled = scale(x)
    assert scaled.dtype == np.float32
    assert np.array_equal(scaled, x.astype(np.float32) / 255.0)
    assert scaled.min() == 0.0 and scaled.max() == 1.0

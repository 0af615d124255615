"""Invariants of the real MNIST the project trains on (see shared/data/SOURCES.md)."""

from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import load_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_shapes_and_dtypes(mnist):
    assert mnist.x_train.shape == (60000, 28, 28)
    assert mnist.y_train.shape == (60000,)
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_test.shape == (10000,)
    for array in (mnist.x_train, mnist.y_train, mnist.x_test, mnist.y_test):
        assert array.dtype == np.uint8


def test_class_counts(mnist):
    assert np.bincount(mnist.y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test, minlength=10).tolist() == TEST_COUNTS


def test_official_order_and_pixel_statistics(mnist):
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert round(float(mnist.x_train.mean()), 4) == 33.3184
    assert round(float(mnist.x_test.mean()), 4) == 33.7912
    assert (mnist.x_train.min(), mnist.x_train.max()) == (0, 255)


def test_idx_files_hold_the_same_arrays(mnist):
    idx = Path(mnist.source).parent / "mnist-idx"
    if not idx.is_dir():
        pytest.skip(f"no IDX copy beside {mnist.source}")
    from_idx = load_mnist(idx)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_idx, key), getattr(mnist, key))

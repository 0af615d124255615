"""Augmentation mechanics on synthetic strokes: shapes, range, seeds, identity when off."""

import numpy as np
import pytest
from scipy import ndimage

from mnistlab.augment import augment_batch


@pytest.fixture
def batch():
    x = np.zeros((64, 28, 28), np.float32)
    x[:, 6:22, 12:16] = 1.0  # a '1': a vertical bar in the middle
    return x


def test_shapes_dtype_and_range(batch):
    out = augment_batch(batch, np.random.default_rng(0))
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert batch[:, 6:22, 12:16].min() == 1.0  # the input is not modified in place


def test_the_same_seed_gives_the_same_batch_and_another_seed_does_not(batch):
    first = augment_batch(batch, np.random.default_rng(7))
    again = augment_batch(batch, np.random.default_rng(7))
    other = augment_batch(batch, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.01


def test_switched_off_is_the_identity(batch):
    assert augment_batch(batch, np.random.default_rng(0), strength=0) is batch


def test_images_really_change_but_stay_digits(batch):
    out = augment_batch(batch, np.random.default_rng(1))
    changed = np.abs(out - batch).reshape(len(batch), -1).sum(axis=1)
    assert (changed > 1.0).mean() > 0.9  # nearly every image is distorted
    ink = out.reshape(len(out), -1).sum(axis=1)
    original_ink = batch[0].sum()
    # Distortions move and reshape strokes; they neither erase nor flood the digit.
    assert np.all(ink > 0.3 * original_ink) and np.all(ink < 2.5 * original_ink)
    centres = np.array([ndimage.center_of_mass(image) for image in out])
    assert np.all(np.abs(centres - 13.5) < 6)  # moved a few pixels, not off the canvas

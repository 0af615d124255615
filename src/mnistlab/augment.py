"""Random, seeded distortions of digit batches, on the host with NumPy and SciPy.

Vectorised over the batch: one coordinate map per batch composes a random affine
transform (shift, rotation, scale, shear) with an elastic distortion (Simard et al.
2003), and a single map_coordinates call resamples every image. Then some images get
thicker or thinner strokes or are binarised, as scanned forms and postal codes differ
from MNIST mostly in stroke width, binarisation and slant.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mnistlab.data import scale

MAX_SHIFT = 2.0  # pixels
MAX_ROTATION = np.deg2rad(12.0)
MAX_SCALE = 0.10  # +-10%
MAX_SHEAR = 0.2  # tangent of the slant
# Displacement = ALPHA * (uniform noise smoothed by a Gaussian of SIGMA): about 1 px.
ELASTIC_ALPHA = 14.0
ELASTIC_SIGMA = 3.0
STROKE_CHANGE_RATE = 0.2  # fraction of images made thicker or thinner
BINARISE_RATE = 0.1
# Of each image's strongest ink; low, so that faint and thin strokes stay whole.
BINARISE_LEVEL = 0.3


def augment_batch(x: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """(N, 28, 28) floats in [0, 1] -> distorted copies; strength 0 returns x unchanged."""
    if strength == 0:
        return x
    n, height, width = x.shape
    centre = np.array([(height - 1) / 2, (width - 1) / 2])

    def uniform(limit):
        return rng.uniform(-limit, limit, n) * strength

    angle, scale, shear = uniform(MAX_ROTATION), 1 + uniform(MAX_SCALE), uniform(MAX_SHEAR)
    shift = np.stack([uniform(MAX_SHIFT), uniform(MAX_SHIFT)], axis=1)  # (N, 2) rows, cols
    # Forward transform per image: slant @ rotation @ scale, about the centre.
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)  # (N, 2, 2)
    slant = np.zeros((n, 2, 2))
    slant[:, 0, 0] = slant[:, 1, 1] = 1.0
    slant[:, 1, 0] = shear  # columns move with the row: italic strokes
    forward = slant @ rotation * scale[:, None, None]
    inverse = np.linalg.inv(forward)  # output pixel -> where to read the input

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    grid = np.stack([rows, cols]) - centre[:, None, None]  # (2, H, W)
    source = np.einsum("nij,jhw->nihw", inverse, grid)
    source += centre[None, :, None, None] - shift[:, :, None, None]
    # Elastic: smoothed random displacement fields, (N, 2, H, W), in pixels.
    noise = rng.uniform(-1, 1, (n, 2, height, width))
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 0, ELASTIC_SIGMA, ELASTIC_SIGMA))
    source += ELASTIC_ALPHA * strength * smooth
    batch_index = np.broadcast_to(np.arange(n)[:, None, None], (n, height, width))
    out = ndimage.map_coordinates(
        x, [batch_index, source[:, 0], source[:, 1]], order=1, mode="constant", cval=0.0
    ).astype(np.float32)

    pick = rng.random(n)
    thicker = pick < STROKE_CHANGE_RATE * strength / 2
    thinner = (pick >= STROKE_CHANGE_RATE * strength / 2) & (pick < STROKE_CHANGE_RATE * strength)
    out[thicker] = ndimage.grey_dilation(out[thicker], size=(1, 2, 2))
    out[thinner] = ndimage.grey_erosion(out[thinner], size=(1, 2, 2))
    # Not after thinning: a thinned stroke binarised breaks into pieces.
    binarise = (rng.random(n) < BINARISE_RATE * strength) & ~thinner
    level = BINARISE_LEVEL * out[binarise].max(axis=(1, 2), keepdims=True)
    out[binarise] = (out[binarise] > level).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def preview(images: np.ndarray, seed: int, strength: float = 1.0) -> np.ndarray:
    """uint8 digits (N, 28, 28) distorted as one training batch would be, as uint8 again."""
    rng = np.random.default_rng(seed)
    return (augment_batch(scale(images), rng, strength) * 255).astype(np.uint8)

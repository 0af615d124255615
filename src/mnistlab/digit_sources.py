"""Labelled digits from other sources, made MNIST-style, for `evaluate --data NAME`."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from mnistlab import images

# 8 -> 24 px: large enough to find and centre the stroke, still below the size at which
# images.to_mnist starts removing uneven lighting (meant for photographs).
_UPSCALE = 3


def sklearn_digits() -> tuple[np.ndarray, np.ndarray, str]:
    """(images (N, 28, 28) uint8, labels (N,) uint8, sha256 of both)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    side = 8 * _UPSCALE
    # 0..16 ink counts -> dark ink on white paper, as the forms were scanned.
    paper = (255 - bunch.images * (255 / 16)).astype(np.float32)
    x = np.stack(
        [
            images.to_mnist(
                np.asarray(
                    Image.fromarray(p, mode="F").resize((side, side), Image.Resampling.BICUBIC)
                )
            )
            for p in paper
        ]
    )
    x = (x * 255).round().astype(np.uint8)
    y = bunch.target.astype(np.uint8)
    return x, y, hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()

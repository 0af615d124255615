"""MNIST test digits made into what a reader meets on paper, for measuring it honestly:
low-resolution scans of single digits, and whole numbers written on forms.

Everything is seeded and drawn from the digits given (the MNIST *test* digits: the
models never saw them). Images are dark ink on unevenly lit paper, uint8, as scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

# String lengths 2..8, most of them 4 to 6.
LENGTHS = np.arange(2, 9)
LENGTH_WEIGHTS = np.array([0.04, 0.08, 0.22, 0.26, 0.22, 0.1, 0.08])
TOUCHING_RATE = 0.2  # of adjacent pairs
INK_LEVEL = 0.3  # a pixel is ink for touching and gaps at this fraction of full ink
# Each extra appears in this fraction of the strings.
EXTRAS = {"ruled line": 0.15, "specks": 0.2, "cell border": 0.15, "dark margin": 0.1,
          "bleed-through": 0.1, "tick marks": 0.1}  # fmt: skip


@dataclass(frozen=True)
class Document:
    """One image of a written number, with what is written on it."""

    image: np.ndarray  # (H, W) uint8, dark ink on light paper
    text: str
    touching: bool  # at least one adjacent pair of digits touches
    spans: list[tuple[int, int]]  # each digit's ink columns [left, right), in order


def low_resolution_scan(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit (28, 28) -> a scan of it made at 16x16 and binarised, with a thinner
    or thicker stroke, upscaled 3x to 6x onto unevenly lit paper: (H, W) uint8."""
    small = _resize(digit.astype(np.float32) / 255.0, (16, 16), Image.Resampling.BOX)
    level = rng.choice([0.25, 0.4, 0.55])  # low: a thick pen; high: a thin one
    binary = (small >= level * small.max()).astype(np.float32)
    factor = int(rng.integers(3, 7))
    ink = np.kron(binary, np.ones((factor, factor), np.float32))  # blocky, as scanned
    ink = ndimage.gaussian_filter(ink, 0.3 * factor)  # the scanner's optics
    ink = np.pad(ink, 2 * factor)
    return _on_paper(ink, rng)


def number_strings(
    x: np.ndarray, y: np.ndarray, n: int, seed: int, length: int | None = None
) -> list[Document]:
    """n handwritten numbers built from the digits (x, y); `length` fixes their length."""
    rng = np.random.default_rng(seed)
    lengths = [length or int(rng.choice(LENGTHS, p=LENGTH_WEIGHTS)) for _ in range(n)]
    return [_number(x, y, k, rng) for k in lengths]


def _number(x: np.ndarray, y: np.ndarray, length: int, rng: np.random.Generator) -> Document:
    picks = rng.integers(0, len(x), length)
    scale = rng.uniform(1.2, 2.4)  # the writer's size: digits 24 to 48 px tall
    pen = rng.choice(["thin", "normal", "thick"], p=[0.25, 0.5, 0.25])
    glyphs = [_glyph(x[i], scale * rng.uniform(0.85, 1.15), pen, rng) for i in picks]
    height = int(max(g.shape[0] for g in glyphs) + 6 * scale)
    width = int(sum(g.shape[1] for g in glyphs) + 16 * scale * length + 8)
    canvas = np.zeros((height, width), np.float32)
    baseline = height - 3 * scale
    right = np.full(height, -1.0e9)  # rightmost ink per row so far
    cursor, touching, spans = 0.0, False, []
    for glyph in glyphs:
        top = round(baseline - glyph.shape[0] + rng.normal(0, 0.06 * glyph.shape[0]))
        top = min(max(top, 0), height - glyph.shape[0])
        rows = slice(top, top + glyph.shape[0])
        mask = glyph >= INK_LEVEL
        first = np.where(mask.any(1), mask.argmax(1), 10**9)  # leftmost ink per glyph row
        if cursor == 0.0:
            left = 4
        else:
            touches = rng.random() < TOUCHING_RATE
            gap = rng.uniform(-0.03, 0.0) if touches else rng.uniform(0.05, 0.5)
            gap *= glyph.shape[0]  # in proportion to the writing's size
            # Place the glyph so that its ink comes `gap` px from the ink before it.
            left = int(np.floor(np.max(right[rows] - first) + 1 + gap))
            left = max(left, int(cursor - glyph.shape[1] // 2))
            touching |= touches
        inked = np.flatnonzero(mask.any(0))
        spans.append((left + int(inked[0]), left + int(inked[-1]) + 1))
        region = canvas[rows, left : left + glyph.shape[1]]
        np.maximum(region, glyph[:, : region.shape[1]], out=region)
        last = np.where(mask.any(1), glyph.shape[1] - 1 - mask[:, ::-1].argmax(1), -(10**9))
        right[rows] = np.maximum(right[rows], left + last)
        cursor = left + glyph.shape[1]
    used = np.flatnonzero(canvas.max(0) > 0)
    canvas = canvas[:, : used[-1] + 1]
    margin = int(rng.uniform(0.2, 0.8) * height)
    canvas = np.pad(canvas, ((margin // 2, margin // 2), (margin, margin)))
    canvas, dark = _extras(canvas, scale, rng)
    image = _on_paper(canvas, rng, dark)
    spans = [(a + margin, b + margin) for a, b in spans]
    return Document(image, "".join(str(int(y[i])) for i in picks), touching, spans)


def _glyph(digit: np.ndarray, scale: float, pen: str, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit cropped to its ink, drawn at `scale`, with a thinner or thicker pen."""
    ink = digit.astype(np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.05)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    size = (max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale)))
    ink = _resize(ink, size, Image.Resampling.BICUBIC).clip(0, 1)
    radius = max(1, round(scale * rng.uniform(0.4, 0.7)))
    disk = _disk(radius)
    if pen == "thick":
        ink = ndimage.grey_dilation(ink, footprint=disk)
    elif pen == "thin":
        thin = ndimage.grey_erosion(np.pad(ink, radius), footprint=disk)
        thin = thin[radius:-radius, radius:-radius]
        if thin.max() >= 0.5:  # else the pen would have left nothing: keep the stroke
            ink = np.where(thin > 0.1, thin, 0) / thin.max()
    return ink


def _extras(canvas: np.ndarray, scale: float, rng: np.random.Generator):
    """Lines, specks, a box, tick marks and bleed-through drawn as ink; a dark margin as
    a mask of where the scanner saw no paper."""
    height, width = canvas.shape
    chosen = {name for name, rate in EXTRAS.items() if rng.random() < rate}
    thickness = max(1, round(rng.uniform(0.6, 1.4) * scale))
    line_ink = rng.uniform(0.5, 1.0)
    if "ruled line" in chosen:  # near the digits' foot, often through it
        row = int(height * rng.uniform(0.72, 0.9))
        canvas[row : row + thickness] = np.maximum(canvas[row : row + thickness], line_ink)
    if "cell border" in chosen:
        inset = int(rng.integers(0, 3))
        for edge in (
            np.s_[inset : inset + thickness, :],
            np.s_[height - inset - thickness : height - inset, :],
            np.s_[:, inset : inset + thickness],
            np.s_[:, width - inset - thickness : width - inset],
        ):
            canvas[edge] = np.maximum(canvas[edge], line_ink)
    if "specks" in chosen:
        for _ in range(int(rng.integers(3, 15))):
            r, c = rng.integers(0, height), rng.integers(0, width)
            size = int(rng.integers(1, max(2, round(scale)) + 1))
            speck = canvas[r : r + size, c : c + size]
            np.maximum(speck, rng.uniform(0.4, 1), out=speck)
    if "tick marks" in chosen:
        length = max(3, int(4 * scale))
        for c in rng.integers(0, width, int(rng.integers(1, 4))):
            top = 0 if rng.random() < 0.5 else height - length
            canvas[top : top + length, c : c + thickness] = line_ink
    if "bleed-through" in chosen:  # the other side's writing, mirrored and faint
        canvas = np.maximum(canvas, canvas[:, ::-1] * rng.uniform(0.12, 0.25))
    dark = np.zeros_like(canvas, bool)
    if "dark margin" in chosen:
        band = int(rng.uniform(0.04, 0.12) * (width if rng.random() < 0.7 else height))
        side = int(rng.integers(0, 4))
        if side == 0:
            dark[:, :band] = True
        elif side == 1:
            dark[:, width - band :] = True
        elif side == 2:
            dark[: max(1, band // 3)] = True
        else:
            dark[height - max(1, band // 3) :] = True
    return canvas, dark


def _on_paper(ink: np.ndarray, rng: np.random.Generator, dark: np.ndarray | None = None):
    """Ink (H, W) in [0, 1] -> a grey scan: dark ink on paper lit unevenly, with noise."""
    height, width = ink.shape
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    light = rng.uniform(190, 245) + rng.uniform(-30, 30) * rows + rng.uniform(-30, 30) * cols
    pen = rng.uniform(10, 90)
    gray = light - ink.clip(0, 1) * (light - pen)
    if dark is not None:
        gray[dark] = rng.uniform(10, 50)
    gray += rng.normal(0, rng.uniform(1, 5), gray.shape)
    return gray.clip(0, 255).round().astype(np.uint8)


def _resize(image: np.ndarray, size: tuple[int, int], resampling) -> np.ndarray:
    """(H, W) float -> size (rows, cols), with Pillow's anti-aliased resampling."""
    out = Image.fromarray(image.astype(np.float32), mode="F").resize(size[::-1], resampling)
    return np.asarray(out)


def _disk(radius: int) -> np.ndarray:
    r, c = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return r * r + c * c <= radius * radius

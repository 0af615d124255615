"""The line model: reads a written number's whole line at once and says where each digit
lies. A small CNN over the line's columns, trained with CTC (no segmentation needed).

Why: cutting touching digits apart and classifying the pieces finds the right cut for
only 73% of the string benchmark's numbers; a model that sees the line learns where one
written digit ends and the next begins, touching or not. It is trained on numbers
written with MNIST's *training* digits (documents.number_strings), so the string
benchmark (the *test* digits) is new to it.

The weights of three such models ship with the package (WEIGHTS); inference is NumPy (no
framework, and no compilation per image width). read.train_lines trains them.
"""

from __future__ import annotations

import importlib.resources
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.special import softmax

from mnistlab.read import segment
from mnistlab.runs import RunError

# Three line models read each line: one trained on numbers of MNIST's training digits as
# they are, one with those digits distorted in every other chunk (`--augment`), and a
# wider one (train_lines.WIDE) trained longer on distorted digits and paper from the
# start. Their errors differ; the reader keeps the reading that all find likeliest
# (reader.py).
WEIGHTS = ("lines.npz", "lines_augmented.npz", "lines_wide.npz")
HEIGHT = 24  # the line image's rows; the ink's box is scaled to INNER of them
INNER = 20  # as MNIST's digits fill 20 of 28 rows
PAD = 4  # blank columns each side
STRIDE = 2  # line columns per output frame
BLANK = 0  # CTC's "no digit here"; digit d is class d + 1
POOLS = ((2, 2), (2, 1), (2, 1))  # after each conv: rows 24 -> 3, columns halved once
CONV = (32, 48, 64)
CONTEXT = ((5, 128), (3, 128))  # 1-D convolutions along the line: (width, filters)
BATCH = 16  # line images per NumPy call
# Each image is padded to a multiple of this many columns (its own: an image's reading
# must not depend on what it was batched with), in training as in reading.
COLUMNS = 32


@dataclass(frozen=True)
class Line:
    """A field's ink as the line model sees it, and how to map its columns back."""

    image: np.ndarray  # (HEIGHT, W) float32 in [0, 1], W even
    left: int  # the field's first ink column
    scale: float  # line pixels per field pixel

    def column(self, frames: np.ndarray) -> float:
        """The field column at the centre of these output frames."""
        return self.left + (STRIDE * float(np.mean(frames)) + STRIDE / 2 - PAD) / self.scale


def line_image(field: segment.Field) -> Line:
    """The field's ink cut to its box, scaled to INNER rows (aspect kept), on HEIGHT rows,
    quantised to 8 bits as in training."""
    rows = np.flatnonzero(field.ink.any(1))
    cols = np.flatnonzero(field.ink.any(0))
    ink = field.ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink = (ink / np.percentile(ink[ink > 0], 90)).clip(0, 1)
    scale = INNER / ink.shape[0]
    width = max(1, round(ink.shape[1] * scale))
    small = Image.fromarray(ink.astype(np.float32), "F").resize(
        (width, INNER), Image.Resampling.LANCZOS
    )
    image = np.zeros((HEIGHT, width + 2 * PAD + width % 2), np.float32)
    top = (HEIGHT - INNER) // 2
    image[top : top + INNER, PAD : PAD + width] = np.asarray(small).clip(0, 1)
    return Line(np.round(image * 255) / 255, int(cols[0]), scale)


def training_line(gray: np.ndarray) -> np.ndarray | None:
    """A written number (H, W) -> its line image as the line models train on it (uint8);
    None where segment finds no ink to read."""
    try:
        field = segment.find_field(np.asarray(gray, np.float32))
    except segment.SegmentError:
        return None
    return np.round(line_image(field).image * 255).astype(np.uint8)


class LineModel:
    """Line images -> per-frame class probabilities (frames, 11), blank first."""

    def __init__(self, weights: dict[str, np.ndarray]):
        count = len(CONV) + len(CONTEXT) + 1
        # float32 whatever the file holds: lines_wide.npz is stored as float16, to stay
        # under 1 MiB in git (its readings of both dev sets and 2,000 strings are the same).
        self.layers = [
            (weights[f"w{k}"].astype(np.float32), weights[f"b{k}"].astype(np.float32))
            for k in range(count)
        ]

    @classmethod
    def load(cls, name: str = WEIGHTS[0]) -> LineModel:
        """Weights that ship with the package."""
        return cls.from_bytes(importlib.resources.files(__package__).joinpath(name).read_bytes())

    @classmethod
    def from_file(cls, path: Path) -> LineModel:
        """Weights that `adapt` wrote; a RunError when the file is missing or damaged."""
        try:
            return cls.from_bytes(Path(path).read_bytes())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise RunError(f"{path}: missing or damaged line model weights ({e})") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> LineModel:
        with np.load(io.BytesIO(data)) as weights:
            return cls(dict(weights))

    def architecture(self) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        """Its filters, as CONV and CONTEXT give them, read off its weights (the shipped
        models differ in width): what train_lines.build needs to fine-tune it."""
        kernels = [kernel for kernel, _ in self.layers]
        conv = tuple(k.shape[-1] for k in kernels[: len(CONV)])
        return conv, tuple((k.shape[0], k.shape[-1]) for k in kernels[len(CONV) : -1])

    def weights(self) -> dict[str, np.ndarray]:
        """As the weights file holds them: w0, b0, w1, ..."""
        pairs = enumerate(self.layers)
        return {f"{name}{k}": v for k, (w, b) in pairs for name, v in (("w", w), ("b", b))}

    def __call__(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(lines)
        by_width: dict[int, list[int]] = {}
        for k, line in enumerate(lines):
            by_width.setdefault(padded_width(line.shape[1]), []).append(k)
        for width, members in by_width.items():
            for start in range(0, len(members), BATCH):
                chunk = members[start : start + BATCH]
                batch = np.zeros((len(chunk), HEIGHT, width), np.float32)
                for row, k in enumerate(chunk):
                    batch[row, :, : lines[k].shape[1]] = lines[k]
                p = softmax(self._logits(batch), axis=-1)
                for row, k in enumerate(chunk):  # the padding's frames are not the image's
                    out[k] = p[row, : lines[k].shape[1] // STRIDE]
        return out

    def _logits(self, x: np.ndarray) -> np.ndarray:
        h = x[..., None]
        for (kernel, bias), pool in zip(self.layers, POOLS, strict=False):
            h = _max_pool(np.maximum(_conv(h, kernel, bias, axes=(1, 2)), 0), pool)
        batch, rows, frames, channels = h.shape
        h = h.transpose(0, 2, 1, 3).reshape(batch, frames, rows * channels)
        for kernel, bias in self.layers[len(CONV) : -1]:
            h = np.maximum(_conv(h, kernel, bias, axes=(1,)), 0)
        kernel, bias = self.layers[-1]
        return h @ kernel + bias


def shipped() -> list[LineModel]:
    """Every line model that ships with the package."""
    return [LineModel.load(name) for name in WEIGHTS]


def padded_width(width: int) -> int:
    return -(-width // COLUMNS) * COLUMNS


def decode(p: np.ndarray, length: int | None = None) -> list[np.ndarray]:
    """Per-frame probabilities (T, 11) -> the frames of each digit read, left to right:
    the most likely path (with `length`, the most likely with exactly that many digits).
    A digit's frames are a run of one class; p[frames] says which digit it is."""
    labels = p.argmax(1) if length is None else _best_path(np.log(p + 1e-12), length)
    runs, previous = [], BLANK
    for t, label in enumerate(labels):
        if label != BLANK and label == previous:
            runs[-1].append(t)
        elif label != BLANK:
            runs.append([t])
        previous = label
    return [np.array(run) for run in runs]


def digit_probabilities(p: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """What the line model says one digit is: (10,) over its frames, blank left out."""
    seen = p[frames, 1:].sum(0)
    return seen / seen.sum()


def string_probability(p: np.ndarray, text: str) -> float:
    """The line model's probability that the line reads `text`: CTC's forward sum over
    every frame labelling that collapses to it (so a reading that could as well have one
    digit more or less, or another digit, gets less than its best path suggests)."""
    logp = np.log(p + 1e-30)
    labels = np.zeros(2 * len(text) + 1, np.int64)  # blank, digit, blank, digit, ... blank
    labels[1::2] = [int(c) + 1 for c in text]
    # A path may jump over a blank between two different digits.
    skip = np.zeros(len(labels), bool)
    skip[2:] = (labels[2:] != BLANK) & (labels[2:] != labels[:-2])
    alpha = np.full(len(labels), -np.inf)
    alpha[:2] = logp[0, labels[:2]]
    for t in range(1, len(p)):
        step = alpha.copy()
        step[1:] = np.logaddexp(step[1:], alpha[:-1])
        step[2:] = np.where(skip[2:], np.logaddexp(step[2:], alpha[:-2]), step[2:])
        alpha = step + logp[t, labels]
    total = np.exp(np.logaddexp(alpha[-1], alpha[-2]) if text else alpha[-1])
    # At most 1: a saturated model's float32 frames sum to a little over 1, and so can
    # the paths' sum (up to 1.00000008 on an adapted reader's register cells).
    return min(1.0, float(total))


def _best_path(logp: np.ndarray, length: int) -> np.ndarray:
    """Viterbi over (digits so far, last label) states: the best frame labelling whose
    collapsed reading has exactly `length` digits."""
    frames, classes = logp.shape
    if frames < length:
        raise segment.SegmentError(f"too little ink for {length} digits")
    score = np.full((length + 1, classes), -np.inf)  # [digits read, last label]
    score[0, BLANK], score[1, 1:] = logp[0, BLANK], logp[0, 1:]
    back = np.zeros((frames, length + 1, classes, 2), np.int32)
    back[0] = -1
    for t in range(1, frames):
        new = np.full_like(score, -np.inf)
        # Stay: a blank after anything, or the same digit again (merged).
        stay_blank = score.argmax(1)
        new[:, BLANK] = score.max(1) + logp[t, BLANK]
        back[t, :, BLANK] = np.stack([np.arange(length + 1), stay_blank], 1)
        new[:, 1:] = score[:, 1:] + logp[t, 1:]
        back[t, :, 1:, 0] = np.arange(length + 1)[:, None]
        back[t, :, 1:, 1] = np.arange(1, classes)
        # Start a new digit: after a blank or a different digit.
        for label in range(1, classes):
            before = score[:-1].copy()
            before[:, label] = -np.inf
            arg = before.argmax(1)
            start = before.max(1) + logp[t, label]
            better = start > new[1:, label]
            new[1:, label] = np.where(better, start, new[1:, label])
            back[t, 1:, label, 0] = np.where(better, np.arange(length), back[t, 1:, label, 0])
            back[t, 1:, label, 1] = np.where(better, arg, back[t, 1:, label, 1])
        score = new
    if not np.isfinite(score[length]).any():
        raise segment.SegmentError(f"cannot read {length} digits here")
    labels = np.zeros(frames, np.int32)
    state = (length, int(score[length].argmax()))
    for t in range(frames - 1, -1, -1):
        labels[t] = state[1]
        if t:
            state = tuple(back[t, state[0], state[1]])
    return labels


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, axes: tuple[int, ...]):
    """'same' convolution as one matrix product; kernel in Keras' layout (..., in, out)."""
    size = kernel.shape[:-2]
    pad = [(0, 0)] * x.ndim
    for axis, k in zip(axes, size, strict=True):
        pad[axis] = (k // 2, k // 2)
    windows = sliding_window_view(np.pad(x, pad), size, axis=axes)  # (..., C, *size)
    windows = np.moveaxis(windows, x.ndim - 1, -1)  # (..., *size, C)
    flat = windows.reshape(*x.shape[:-1], -1)
    return flat @ kernel.reshape(-1, kernel.shape[-1]) + bias


def _max_pool(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    batch, rows, cols, channels = x.shape
    a, b = pool
    x = x[:, : rows // a * a, : cols // b * b]
    return x.reshape(batch, rows // a, a, cols // b, b, channels).max(axis=(2, 4))

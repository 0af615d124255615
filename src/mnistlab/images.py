"""Any user image -> an MNIST-style 28x28 digit, preprocessed the way MNIST was made.

MNIST digits are white ink on black, size-normalised to fit a 20x20 box (aspect kept,
anti-aliased) and placed in 28x28 so that their centre of mass is at the centre. Phone
photos, scans and drawings are not; this module makes them so. Pillow and SciPy only.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from mnistlab import runs
from mnistlab.config import IMAGE_SHAPE
from mnistlab.errors import UserError, first_line

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF")
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
# Refuse images that would decode to more pixels than this (a 6000x4000 photo; a JPEG
# counts at the 1/2 to 1/8 scale it is decoded at). Decoded at 4 bytes a pixel and
# converted once, the worst case stays under 200 MB (benchmarks/image_limits.py).
MAX_PIXELS = 25_000_000
# Decoding costs time per row too: a 1x25,000,000 PNG takes a second to decode.
MAX_DIMENSION = 16_384
# Larger images are reduced to this many pixels a side before any work on them: a digit
# ends up 20 px tall, and a 1024-px image still gives it 50 or more.
MAX_SIDE = 1024
# Images over this many pixels take one of HEAVY_DECODES places to decode, so that a
# burst of large images cannot hold more than that many full-size copies in memory.
HEAVY_PIXELS = 4_000_000
HEAVY_DECODES = 2
_heavy_decodes = threading.BoundedSemaphore(HEAVY_DECODES)
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that exif_transpose turns by 90 degrees
# Modes that Image.reduce averages meaningfully.
REDUCIBLE_MODES = ("L", "LA", "La", "RGB", "RGBA", "RGBa", "I", "F", "CMYK", "YCbCr", "LAB")
# MNIST fitted each digit into a BOX x BOX square, then centred it in SIDE x SIDE.
SIDE, BOX = IMAGE_SHAPE[0], 20
# Where MNIST's digits have their centre of mass, in 0-based pixel coordinates: the mean
# over the test set is (13.99, 14.01), spread 0.29 px (not the middle, 13.5).
CENTRE = 14.0
RESAMPLING = Image.Resampling.LANCZOS
FULL_INK_PERCENTILE = 90
FAINT = 0.05  # of full ink: fainter is resampling's ringing, not ink
# Ink below this fraction of the strongest ink is background (paper grain, shadows).
INK_THRESHOLD = 0.2
# Ink covers at most 33% of an MNIST digit's 28x28, 35% of a synthetic number and 57% of
# a real cheque amount (its printed background), and 77% or more of random noise.
MAX_INK_SHARE = 0.7


class ImageError(UserError):
    """This image cannot be read as a digit; the message says why."""


@dataclass(frozen=True)
class Decoded:
    """A decoded image as worked on, and how its pixels map to the file's."""

    gray: np.ndarray  # (H, W) float32 in [0, 255], at most MAX_SIDE a side
    factor: int  # each working pixel stands for factor x factor of the file's
    size: tuple[int, int]  # the file's width and height (after its EXIF rotation)

    def box(self, box: list[int]) -> list[int]:
        """A box (x, y, w, h) in working pixels -> the same box in the file's pixels."""
        x, y, w, h = (v * self.factor for v in box)
        width, height = self.size
        return [x, y, min(x + w, width) - x, min(y + h, height) - y]


def read_image(source: bytes | str | os.PathLike) -> np.ndarray:
    """An image file's grayscale floats (H, W) in [0, 255], as decode makes them."""
    return decode(source).gray


def decode(source: bytes | str | os.PathLike) -> Decoded:
    """Decode an image file into grayscale floats (H, W) in [0, 255], paper-white background.

    Handles PNG, JPEG, BMP, GIF and TIFF in any mode: palette, 16-bit, CMYK, LAB, and
    transparency (composited on white, so a transparent background reads as paper).
    Images larger than MAX_SIDE are reduced while decoding (JPEG) or right after, before
    any float copy: work and memory stay bounded, whatever the file's size.
    """
    data = source if isinstance(source, bytes) else _read_regular(Path(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            image.draft(image.mode, (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4, 1/8
            shown = f"image of {image.width}x{image.height} pixels"
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"{shown} is over the {MAX_PIXELS:,}-pixel limit")
            if max(image.size) > MAX_DIMENSION:
                raise ImageError(f"{shown} is over the {MAX_DIMENSION:,}-pixel limit for a side")
            draft = round(width / image.width)  # 1, or the scale JPEG's draft decodes at
            heavy = image.width * image.height > HEAVY_PIXELS
            with _heavy_decodes if heavy else contextlib.nullcontext():
                image, factor = _reduced(image)
            # Phone photos carry their rotation in EXIF; a quarter turn swaps the sides.
            turned = image.getexif().get(EXIF_ORIENTATION) in QUARTER_TURNS
            image = ImageOps.exif_transpose(image)
            size = (height, width) if turned else (width, height)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image over the {MAX_PIXELS:,}-pixel limit") from None
    except UnidentifiedImageError:
        raise ImageError("not an image in a supported format (PNG, JPEG, BMP, GIF, TIFF)") from None
    except Exception as e:  # Pillow raises many types on damaged files
        raise ImageError(f"damaged or truncated image ({first_line(e)})") from None
    try:
        gray = _to_gray(image)
    except Exception as e:  # a mode Pillow decodes but cannot convert
        raise ImageError(f"unsupported image mode {image.mode} ({first_line(e)})") from None
    return Decoded(gray, draft * factor, size)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """Grayscale (H, W) in [0, 255] -> (28, 28) float32 in [0, 1], white digit on black."""
    return fit(check_ink(ink(gray)))


def check_ink(ink_: np.ndarray) -> np.ndarray:
    """The ink map as it is, or an ImageError where ink covers most of the image: noise or
    a texture, no written digit, which a model would still read as one."""
    share = np.count_nonzero(ink_) / ink_.size
    if share > MAX_INK_SHARE:
        raise ImageError(f"no digit-like ink: ink covers {share:.0%} of the image (noise?)")
    return ink_


def fit(ink_: np.ndarray) -> np.ndarray:
    """Ink (H, W), 0 for background -> (28, 28) float32 in [0, 1], placed as MNIST was.

    The ink's bounding box is scaled to fit BOX x BOX (aspect kept), anti-aliased, and
    placed so that its centre of mass lands on CENTRE, to a fraction of a pixel: one
    resampling does both (Pillow's resize of a fractional source box).
    """
    rows, cols = np.nonzero(ink_)
    if rows.size == 0:
        raise ImageError("no digit found (the image is blank)")
    ink_ = ink_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32)
    scale = BOX / max(ink_.shape)
    span = SIDE / scale  # the source pixels that the 28-pixel output covers
    margin = int(np.ceil(span))
    padded = np.pad(ink_, margin)
    # Pixel i covers [i, i + 1): the centre of mass of pixel centres sits at +0.5.
    centre_row, centre_col = ndimage.center_of_mass(ink_)
    top = margin + centre_row + 0.5 - (CENTRE + 0.5) / scale
    left = margin + centre_col + 0.5 - (CENTRE + 0.5) / scale
    image = Image.fromarray(padded, mode="F").resize(
        (SIDE, SIDE), RESAMPLING, box=(left, top, left + span, top + span)
    )
    canvas = np.asarray(image).clip(0, None)
    # MNIST's strokes are solid: most of a stroke's pixels are full ink. Scale so that
    # they are here too, whatever the pen's pressure (the 90th percentile of the ink).
    full = np.percentile(canvas[canvas > FAINT * canvas.max()], FULL_INK_PERCENTILE)
    canvas = (canvas / full).clip(0, 1)
    # Lanczos rings faintly beyond the 20-pixel box, where MNIST has no ink at all.
    return np.where(canvas >= FAINT, canvas, 0.0).astype(np.float32)


def load_digit(source: bytes | str | os.PathLike) -> np.ndarray:
    """An image file (path or bytes) -> (28, 28) float32 MNIST-style digit."""
    return to_mnist(read_image(source))


def image_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The files named, with each folder replaced by the images in it (sorted); and what
    else was named or those folders hold (skipped: a user should hear of it, not find it
    missing; skip_reason says why). Only regular files, or links to them, are images:
    opening a FIFO blocks until something writes to it."""
    found, skipped = [], []
    for path in map(Path, paths):
        if path.is_dir():
            for p in sorted(path.iterdir()):
                (skipped if skip_reason(p) else found).append(p)
        elif path.exists() and not path.is_file():
            skipped.append(path)
        else:
            found.append(path)  # a missing file is reported as such when it is read
    if not found:
        raise ImageError("no image files found in the folders given")
    return found, skipped


def skip_reason(path: Path) -> str | None:
    """Why image_files leaves `path` out of a folder's images; None for an image file."""
    if path.is_dir():
        return "a folder"
    if not path.is_file():
        return "not a regular file"
    if runs.partial_pid(path.name) is not None:
        return "an unfinished write"
    if path.suffix.lower() not in SUFFIXES:
        return "not an image file"
    return None


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file; an ImageError for anything else (a FIFO, a device),
    checked on the opened file so that nothing swapped in after a check blocks a read,
    and for a file that cannot be read (missing, unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImageError("not a regular file")
            return file.read()
    except OSError as e:
        raise ImageError(f"unreadable: {e}") from None


def _reduced(image: Image.Image) -> tuple[Image.Image, int]:
    """The decoded image, box-averaged down to at most MAX_SIDE pixels a side, and the
    factor it was reduced by."""
    image.load()
    factor = -(-max(image.size) // MAX_SIDE)
    if factor <= 1:
        return image, 1
    # Averaging palette indices or packed bits means nothing: convert those first.
    if image.mode not in REDUCIBLE_MODES:
        has_alpha = image.mode in ("PA", "LA", "RGBA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "I" if image.mode.startswith("I") else "L")
    return image.reduce(factor), factor


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        return (pixels / top * 255.0).clip(0, 255)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32).clip(0, 255)
    if image.mode == "LAB":  # L is lightness already; Pillow cannot convert LAB to L
        return np.asarray(image.getchannel("L"), dtype=np.float32)
    if image.mode in ("P", "PA", "LA", "La", "RGBA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def ink(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0 for background, whatever the paper and lighting."""
    # Paper is what most of the image shows (not its border: a scan's dark margin or a
    # cell's ruled edge runs along it). Light paper means dark ink, so invert.
    ink = 255.0 - gray if np.median(gray) > 127 else gray.copy()
    # Uneven lighting: estimate the background with a grey opening wider than any stroke
    # (it erases the strokes, keeps the slow shading) and subtract it.
    size = max(3, min(ink.shape) // 4)
    if min(ink.shape) > SIDE:
        ink -= ndimage.grey_opening(ink, size=(size, size))
    ink = ink.clip(0, None)
    peak = ink.max()
    if peak < 1.0:
        return np.zeros_like(ink)
    return np.where(ink >= INK_THRESHOLD * peak, ink, 0.0)

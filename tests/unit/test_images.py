"""Preprocessing on synthetic drawings: formats, modes, polarity, framing, bad files."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from mnistlab.images import (
    MAX_DIMENSION,
    MAX_PIXELS,
    MAX_SIDE,
    ImageError,
    image_files,
    load_digit,
    read_image,
    to_mnist,
)


def drawing(size=(120, 90), ink=0, paper=255) -> np.ndarray:
    """A thick 'L' of dark ink on light paper, off-centre."""
    image = np.full(size[::-1], paper, np.uint8)
    image[10:70, 20:32] = ink  # the stem
    image[58:70, 20:60] = ink  # the foot
    return image


def encode(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


REFERENCE = to_mnist(drawing().astype(float))


# Noise does not compress, so half of this file really is half an image.
NOISE_PNG = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)))


def transparent(a: np.ndarray) -> Image.Image:
    """Black RGB everywhere; the drawing lives in the alpha channel."""
    black = Image.fromarray(np.zeros_like(a))
    return Image.merge("RGBA", [black, black, black, Image.fromarray(255 - a)])


def test_output_is_mnist_style():
    digit = REFERENCE
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.max() == 1.0 and digit.min() == 0.0
    rows, cols = np.nonzero(digit > 0.05)
    # The longer side fits 20 px (anti-aliasing may add a faint pixel each side).
    assert max(np.ptp(rows), np.ptp(cols)) + 1 in (20, 21, 22)
    centre = ndimage.center_of_mass(digit)
    assert abs(centre[0] - 13.5) <= 0.5 and abs(centre[1] - 13.5) <= 0.5
    assert digit[0].sum() == digit[-1].sum() == 0  # white ink on a black border


@pytest.mark.parametrize(
    "make",
    [
        lambda a: encode(Image.fromarray(a)),  # L
        lambda a: encode(Image.fromarray(a).convert("RGB"), "JPEG", quality=90),
        lambda a: encode(Image.fromarray(a).convert("RGB"), "BMP"),
        lambda a: encode(Image.fromarray(a).convert("P"), "GIF"),
        lambda a: encode(Image.fromarray(a), "TIFF"),
        lambda a: encode(Image.fromarray(a.astype(np.uint16) * 257)),  # 16-bit, mode I;16
        lambda a: encode(Image.fromarray(255 - a)),  # light ink on dark
        # black ink, transparent everywhere else: the background must read as paper
        lambda a: encode(transparent(a)),
    ],
    ids=["L", "jpeg", "bmp", "gif-palette", "tiff", "16-bit", "inverted", "rgba-transparent"],
)
def test_every_format_and_mode_gives_the_same_digit(make):
    digit = load_digit(make(drawing()))
    assert np.abs(digit - REFERENCE).mean() < 0.03


def test_uneven_lighting_is_removed():
    shaded = drawing().astype(float)
    shaded = shaded * np.linspace(0.55, 1.0, shaded.shape[1])[None, :]  # a shadow on the left
    digit = to_mnist(shaded)
    assert np.abs(digit - REFERENCE).mean() < 0.05


def test_blank_image_is_an_error_not_a_guess():
    with pytest.raises(ImageError, match="no digit found"):
        load_digit(encode(Image.new("L", (50, 50), 255)))


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"plain text, not an image", "not an image"),
     (NOISE_PNG[: len(NOISE_PNG) // 2], "damaged or truncated")],
    ids=["text", "truncated-png"],
)  # fmt: skip
def test_unreadable_files(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_decompression_bomb_is_refused_before_decoding(png_claiming):
    with pytest.raises(ImageError, match=f"over the {MAX_PIXELS:,}-pixel limit"):
        read_image(png_claiming(20_000, 20_000))


def test_folders_expand_to_their_images(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    single = tmp_path / "x.gif"
    files, skipped = image_files([tmp_path, single])
    assert files == [tmp_path / "a.JPG", tmp_path / "b.png", single]
    assert skipped == [tmp_path / "notes.txt"]


def test_a_huge_image_is_reduced_before_any_work(tmp_path):
    image = Image.new("L", (4800, 3000), 255)
    ImageDraw.Draw(image).line([(2000, 500), (2600, 2500)], fill=0, width=120)
    gray = read_image(encode(image))
    assert max(gray.shape) <= MAX_SIDE
    assert gray.dtype == np.float32


def test_a_huge_png_costs_little_memory(tmp_path):
    """Peak memory of reading a 24-megapixel, 60 KB PNG, in a fresh process: it was
    1.25 GB for 40 megapixels (float64 copies of the full image), now under 200 MB."""
    path = tmp_path / "page.png"
    image = Image.new("L", (6000, 4000), 255)
    ImageDraw.Draw(image).line([(2500, 800), (3100, 3200)], fill=0, width=150)
    image.save(path)
    # The peak RSS during the call less the RSS before it (as benchmarks/image_limits.py).
    script = f"""
import re
from mnistlab.images import load_digit

def status(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
load_digit({str(path)!r})
print((status("VmHWM") - before) / 1024)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 200  # MiB


@pytest.mark.parametrize("mode", ["LAB", "CMYK", "YCbCr", "PA", "LA", "F", "I"])
def test_every_mode_reads_like_grayscale(mode):
    """LAB was a crash (Pillow cannot convert it to L); each mode now reads as the L image."""
    image = Image.fromarray(drawing())
    converted = image.convert("P").convert("PA") if mode == "PA" else image.convert(mode)
    digit = to_mnist(read_image(encode(converted, "TIFF")))
    np.testing.assert_allclose(digit, REFERENCE, atol=0.02)


def test_a_large_photo_keeps_its_exif_rotation_through_reduction():
    """A 9000x6000 JPEG is decoded at 1/8 and then reduced: the EXIF orientation must
    survive both, as it does for a small photo."""

    def photo(image: Image.Image, orientation: int) -> bytes:
        exif = Image.Exif()
        exif[0x0112] = orientation  # 6: turn 90 degrees clockwise to display
        return encode(image.convert("RGB"), "JPEG", exif=exif.tobytes())

    page = Image.new("L", (9000, 6000), 255)
    draw = ImageDraw.Draw(page)
    draw.line([(4500, 1200), (4500, 4800)], fill=0, width=360)  # a 1 with a flag
    draw.line([(4500, 1200), (3000, 2000)], fill=0, width=360)
    turned = load_digit(photo(page, 6))
    upright = load_digit(photo(page.transpose(Image.Transpose.ROTATE_270), 1))
    assert np.abs(turned - upright).mean() < 0.02
    assert np.abs(turned - load_digit(photo(page, 1))).mean() > 0.05  # rotation matters


@pytest.mark.parametrize("size", [(1, 25_000_000), (16_385, 1000)])
def test_a_side_over_the_limit_is_refused_before_decoding(size):
    """One pixel wide and 25 million tall is under the pixel limit, but took a second to
    decode (PNG decoding costs time per row)."""
    with pytest.raises(ImageError, match=f"over the {MAX_DIMENSION:,}-pixel limit for a side"):
        read_image(encode(Image.new("L", size, 255)))

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
# What real documents add (number_strings' `paper`), each in this fraction of those strings:
# thousand separators, an end mark ("1.480.-"), a printed security background, an
# underline, slanted writing; continental 1s, with their lead-in stroke, 9s written as a
# P (the stem down from the loop's left: many cheque writers' 9, that an MNIST model reads
# as 8) and 2s that start with a closed loop (read as 9); zeros in a run written as a
# chain of loops, each over the one before ("50.000", that a model reads 5000 when it
# never saw them overlap), or as small loops joined at the top in one stroke ("5ooo",
# read 5000 or 5090); the digits after a separator written smaller ("40.ooo"); and
# round amounts, whose last digits are 0s (on real cheques 0 is the commonest digit and
# one amount in six ends in 00; uniform digits put 00 at the end of one in a hundred).
PAPER = {"separators": 0.4, "end mark": 0.35, "security background": 0.4,
         "underline": 0.15, "slant": 0.4, "linked zeros": 0.5, "joined zeros": 0.4,
         "round amount": 0.35}  # fmt: skip
SMALL_AFTER_SEPARATOR = 0.3  # of the strings with separators
CONTINENTAL_ONES = 0.5  # of the 1s in those strings
HOOKED_NINES = 0.5  # of the 9s: the stem's foot curls back to the left
P_NINES = 0.3  # of the 9s: mirrored, the stem on the loop's left
LOOPED_TWOS = 0.5  # of the 2s: the stroke starts with a closed loop at the top left
END_MARKS = (".-", "-", "=", ".", "/-", ",-", ".=")


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
    x: np.ndarray,
    y: np.ndarray,
    n: int,
    seed: int,
    length: int | None = None,
    paper: float = 0.0,
) -> list[Document]:
    """n handwritten numbers built from the digits (x, y); `length` fixes their length;
    `paper`: the share of them drawn with what real documents add (PAPER), for training
    line models (the numbers drawn without it are those that `paper` 0 draws)."""
    rng = np.random.default_rng(seed)
    lengths = [length or int(rng.choice(LENGTHS, p=LENGTH_WEIGHTS)) for _ in range(n)]
    return [_number(x, y, k, rng, paper) for k in lengths]


def _number(
    x: np.ndarray, y: np.ndarray, length: int, rng: np.random.Generator, paper: float = 0.0
) -> Document:
    picks = rng.integers(0, len(x), length)
    scale = rng.uniform(1.2, 2.4)  # the writer's size: digits 24 to 48 px tall
    pen = rng.choice(["thin", "normal", "thick"], p=[0.25, 0.5, 0.25])

    def written(i: int) -> tuple[np.ndarray, bool]:
        """Digit x[i] in this writer's hand."""
        return _glyph(x[i], scale * rng.uniform(0.85, 1.15), pen, rng), True

    glyphs = [written(i) for i in picks]
    added: set[str] = set()
    if paper and rng.random() < paper:
        added = {name for name, rate in PAPER.items() if rng.random() < rate}
        if "round amount" in added and length > 2:
            zeros = np.flatnonzero(y == 0)
            for k in range(length - int(rng.integers(2, min(4, length - 1) + 1)), length):
                picks[k] = rng.choice(zeros)
                glyphs[k] = written(picks[k])
        glyphs = _as_on_documents(glyphs, [int(y[i]) for i in picks], added, rng)
    height = int(max(g.shape[0] for g, _ in glyphs) + 6 * scale)
    width = int(sum(g.shape[1] for g, _ in glyphs) + 16 * scale * len(glyphs) + 8)
    canvas = np.zeros((height, width), np.float32)
    baseline = height - 3 * scale
    right = np.full(height, -1.0e9)  # rightmost ink per row so far
    cursor, touching, spans = 0.0, False, []
    texts = iter(int(y[i]) for i in picks)
    zero_before = False  # the glyph before is a 0
    for glyph, is_digit in glyphs:
        zero = is_digit and next(texts) == 0
        linked = bool(added & {"linked zeros", "joined zeros"}) and zero and zero_before
        zero_before = zero
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
            if linked:  # overlapping loops; joined ones: the tie reaches the next one's top
                touches = True
                gap = rng.uniform(*((-0.06, 0.0) if "joined zeros" in added else (-0.15, -0.02)))
            gap *= glyph.shape[0]  # in proportion to the writing's size
            # Place the glyph so that its ink comes `gap` px from the ink before it.
            left = int(np.floor(np.max(right[rows] - first) + 1 + gap))
            left = max(left, int(cursor - glyph.shape[1] // 2))
            touching |= touches
        inked = np.flatnonzero(mask.any(0))
        if is_digit:
            spans.append((left + int(inked[0]), left + int(inked[-1]) + 1))
        region = canvas[rows, left : left + glyph.shape[1]]
        np.maximum(region, glyph[:, : region.shape[1]], out=region)
        last = np.where(mask.any(1), glyph.shape[1] - 1 - mask[:, ::-1].argmax(1), -(10**9))
        right[rows] = np.maximum(right[rows], left + last)
        cursor = left + glyph.shape[1]
    used = np.flatnonzero(canvas.max(0) > 0)
    canvas = canvas[:, : used[-1] + 1]
    if "underline" in added:
        _underline(canvas, spans, baseline, scale, rng)
    margin = int(rng.uniform(0.2, 0.8) * height)
    canvas = np.pad(canvas, ((margin // 2, margin // 2), (margin, margin)))
    if "security background" in added:
        canvas = np.maximum(canvas, _security_background(canvas.shape, scale, rng))
    canvas, dark = _extras(canvas, scale, rng)
    image = _on_paper(canvas, rng, dark)
    spans = [(a + margin, b + margin) for a, b in spans]
    return Document(image, "".join(str(int(y[i])) for i in picks), touching, spans)


def _as_on_documents(
    glyphs: list[tuple[np.ndarray, bool]], digits: list[int], added: set[str], rng
) -> list[tuple[np.ndarray, bool]]:
    """The digits' glyphs with what a cheque's writer adds: continental 1s, slant, and
    separators and an end mark as glyphs that are not digits (False)."""
    height = int(np.median([g.shape[0] for g, _ in glyphs]))
    pen = 0.8 * float(np.median([_pen_width(g) for g, _ in glyphs]))
    styled = {1: (True, CONTINENTAL_ONES), 9: (False, HOOKED_NINES)}  # (from the top, rate)
    out = []
    loop = (rng.uniform(0.45, 0.9) * height, rng.uniform(0.8, 1.5))  # a writer's o: size, width
    for k, ((glyph, _), digit) in enumerate(zip(glyphs, digits, strict=True)):
        top, rate = styled.get(digit, (False, 0.0))
        in_run = digit == 0 and 0 in digits[max(0, k - 1) : k] + digits[k + 1 : k + 2]
        if "joined zeros" in added and in_run:
            glyph = _joined_loop(*loop, pen, rng)
        elif digit == 9 and rng.random() < P_NINES:
            glyph = glyph[:, ::-1]
        elif digit == 2 and rng.random() < LOOPED_TWOS:
            glyph = _looped(glyph, pen, rng)
        elif rate and rng.random() < rate:
            glyph = _stroke_to_the_left(glyph, pen, top, rng)
        out.append((glyph, True))
    if "separators" in added and len(out) > 3:
        mark = "." if rng.random() < 0.7 else ","
        if rng.random() < SMALL_AFTER_SEPARATOR:
            factor = rng.uniform(0.55, 0.85)
            out[-3:] = [(_scaled(g, factor), True) for g, _ in out[-3:]]
        for k in range(len(digits) - 3, 0, -3):  # thousands, from the right
            out.insert(k, (_mark(mark, height, pen, rng), False))
    if "end mark" in added:
        out.append((_mark(str(rng.choice(END_MARKS)), height, pen, rng), False))
    if "slant" in added:
        shear = rng.uniform(-0.15, 0.4)
        out = [(_slanted(g, shear), is_digit) for g, is_digit in out]
    return out


def _scaled(glyph: np.ndarray, factor: float) -> np.ndarray:
    """The glyph made smaller, in full ink (a thin or faint stroke would fade out)."""
    size = (max(1, round(glyph.shape[0] * factor)), max(1, round(glyph.shape[1] * factor)))
    small = _resize(glyph, size, Image.Resampling.BILINEAR).clip(0, 1)
    return small / max(float(small.max()), 1e-6)


def _pen_width(glyph: np.ndarray) -> float:
    """The stroke's width: twice the ink's deepest distance to the paper, about."""
    return 2 * float(ndimage.distance_transform_edt(glyph >= INK_LEVEL).max())


def _stroke(shape: tuple[int, int], points: list[tuple[float, float]], width: float):
    """A pen line through (column, row) points on a blank (rows, cols) float image."""
    from PIL import ImageDraw

    image = Image.new("F", shape[::-1], 0.0)
    ImageDraw.Draw(image).line(points, fill=1.0, width=max(1, round(width)), joint="curve")
    return ndimage.gaussian_filter(np.asarray(image), 0.5).clip(0, 1)


def _stroke_to_the_left(glyph: np.ndarray, pen: float, top: bool, rng) -> np.ndarray:
    """The glyph with a pen stroke from its top down to the left (a continental 1's
    lead-in, up to 0.7 times as long as the 1: a short one is read as 1, a long one as 11 by
    a model that never saw it) or from its foot back to the left and up (a 9 whose foot
    curls back)."""
    height = glyph.shape[0]
    reach = int((rng.uniform(0.25, 0.7) if top else 0.3) * height)
    glyph = np.pad(glyph, ((0, 0), (reach, 0)))
    rows, cols = np.nonzero(glyph >= INK_LEVEL)
    row = rows.min() if top else rows.max()
    column = float(cols[np.abs(rows - row) <= 1].mean())
    if top:
        points = [(column, row), (column - reach, row + rng.uniform(0.3, 0.9) * height)]
    else:
        points = [(column, row), (column - 0.5 * reach, row), (column - reach, row - 0.15 * height)]
    return np.maximum(glyph, _stroke(glyph.shape, points, pen))


def _looped(glyph: np.ndarray, pen: float, rng) -> np.ndarray:
    """A 2 whose stroke starts with a closed loop hanging from the top arc's left end, as
    many cheque writers make it (a model that never saw it reads it as 9)."""
    height = glyph.shape[0]
    radius = rng.uniform(0.12, 0.2) * height
    pen = max(1.0, min(0.8 * pen, radius / 1.5))  # a ring, not a blot
    pad = int(radius) + 2
    glyph = np.pad(glyph, ((0, 0), (pad, 0)))
    rows, cols = np.nonzero(glyph >= INK_LEVEL)
    upper = rows <= rows.min() + 0.4 * (rows.max() - rows.min())
    start = int(np.argmin(cols[upper]))
    row, column = float(rows[upper][start]), float(cols[upper][start])
    centre = (column + rng.uniform(0.2, 0.8) * radius, row + rng.uniform(0.6, 1.0) * radius)
    turns = np.linspace(0, 2 * np.pi, 24)
    tall = rng.uniform(1.0, 1.5)  # the loop is often taller than wide
    points = [
        (centre[0] + radius * np.cos(t), centre[1] + tall * radius * np.sin(t)) for t in turns
    ]
    return np.maximum(glyph, _stroke(glyph.shape, points, pen))


def _joined_loop(size: float, wide: float, pen: float, rng) -> np.ndarray:
    """A 0 written as a small cursive o: a loop begun and closed at its top, with the tie
    that joins it to the next one at the top right (a chain of them is one stroke)."""
    height = size * rng.uniform(0.9, 1.1)
    width = height * wide * rng.uniform(0.9, 1.1)
    tie = rng.uniform(0.2, 0.6) * width
    pen = max(1.0, min(pen, height / 4))
    lean = rng.uniform(-0.15, 0.15) * height  # a loop leaning as the writing does
    margin = pen + 1 + abs(lean)
    shape = (int(height + 2 * pen + 2), int(width + tie + 2 * margin))
    centre = (margin + width / 2, pen + 1 + height / 2)
    turns = np.linspace(-np.pi / 2, 1.5 * np.pi + rng.uniform(0, 0.4), 28)  # from the top, round
    points = [
        (centre[0] + width / 2 * np.cos(t) - lean * np.sin(t), centre[1] + height / 2 * np.sin(t))
        for t in turns
    ]
    end = points[-1]
    points += [(end[0] + tie / 2, end[1] - rng.uniform(0, 0.15) * height), (shape[1] - 1, end[1])]
    return _stroke(shape, points, pen)


def _mark(mark: str, height: int, pen: float, rng: np.random.Generator) -> np.ndarray:
    """A separator or end mark, on a glyph of the digits' height (the foot at the bottom)."""
    size = max(2.0, rng.uniform(0.8, 1.3) * pen)
    pen = max(1.0, rng.uniform(0.6, 1.0) * pen)
    parts = []
    for char in mark:
        width = {".": size, ",": size, "-": rng.uniform(0.3, 0.6) * height}.get(char, 0.0)
        width = width or rng.uniform(0.3, 0.5) * height  # "=" and "/"
        canvas_w = int(width + 2 * pen + 2)
        row = height - 1 - pen / 2
        mid = height * rng.uniform(0.4, 0.6)
        x0, x1 = pen / 2 + 1, pen / 2 + 1 + width
        if char == ".":
            points = [(x0, row - size / 2), (x0 + 0.5, row - size / 2)]
            part = _stroke((height, canvas_w), points, size)
        elif char == ",":
            points = [(x0 + size / 2, row - size), (x0, row)]
            part = _stroke((height, canvas_w), points, pen)
        elif char == "-":
            part = _stroke((height, canvas_w), [(x0, mid), (x1, mid - rng.uniform(-2, 2))], pen)
        elif char == "=":
            gap = max(pen * 1.8, 0.12 * height)
            part = np.maximum(
                _stroke((height, canvas_w), [(x0, mid - gap / 2), (x1, mid - gap / 2)], pen),
                _stroke((height, canvas_w), [(x0, mid + gap / 2), (x1, mid + gap / 2)], pen),
            )
        else:  # "/"
            part = _stroke((height, canvas_w), [(x0, row), (x1, height * 0.35)], pen)
        parts.append(part)
        parts.append(np.zeros((height, int(rng.uniform(0.05, 0.15) * height))))
    return np.concatenate(parts[:-1], axis=1)


def _slanted(glyph: np.ndarray, shear: float) -> np.ndarray:
    """The glyph sheared: its top `shear` times its height to the right of its foot."""
    height, width = glyph.shape
    extra = int(abs(shear) * height) + 1
    out_shape = (height, width + extra)
    # output (r, c) <- input (r, c - shear * (height - 1 - r) - offset)
    offset = extra if shear < 0 else 0
    matrix = np.array([[1.0, 0.0], [shear, 1.0]])
    shift = np.array([0.0, -shear * (height - 1) - offset])
    return ndimage.affine_transform(glyph, matrix, shift, out_shape, order=1).clip(0, 1)


def _underline(canvas, spans, baseline: float, scale: float, rng) -> None:
    """A pen line under the number, often through its digits' feet."""
    row = baseline + rng.uniform(-1, 3) * scale
    left = spans[0][0] - rng.uniform(0, 10) * scale
    right = spans[-1][1] + rng.uniform(0, 15) * scale
    rise = rng.uniform(-3, 3) * scale
    line = _stroke(canvas.shape, [(left, row), (right, row + rise)], rng.uniform(0.6, 1.4) * scale)
    np.maximum(canvas, line, out=canvas)


def _security_background(shape: tuple[int, int], scale: float, rng) -> np.ndarray:
    """A cheque's printed pattern: one or two families of thin wavy lines, faint."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    pattern = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 3))):
        angle = rng.uniform(0, np.pi)
        along = cols * np.cos(angle) + rows * np.sin(angle)
        across = -cols * np.sin(angle) + rows * np.cos(angle)
        period = rng.uniform(15, 60) * scale
        wave = along + rng.uniform(1, 6) * scale * np.sin(2 * np.pi * across / period)
        spacing = rng.uniform(2.5, 6) * scale
        distance = np.abs((wave % spacing) - spacing / 2) - spacing / 2 + rng.uniform(0.4, 0.9)
        pattern = np.maximum(pattern, (-distance).clip(0, 1))
    return pattern * rng.uniform(0.12, 0.4)


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

"""A written number's image -> its cleaned ink, grouped into blobs; and that ink shared
out among the digits the line model found (lines.py), one crop per digit.

Steps: find the ink on the paper (images.ink); cut away a scanner's dark margin; remove
ruled lines, underlines and a box drawn around the field (restoring the strokes that
cross them); drop specks and tick marks; group the rest into blobs (a broken digit's
parts overlap horizontally).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from mnistlab import images
from mnistlab.config import MAX_DIGITS

# Hysteresis, in fractions of the strongest ink: a stroke is ink above INK_LEVEL that
# reaches SURE_INK somewhere; fainter marks are paper grain, shading or bleed-through.
INK_LEVEL = 0.2
SURE_INK = 0.45
# Paper: a side whose median is darker than this fraction of the paper's grey is a
# scanner's margin, painted over with up to MARGIN_EDGE of the side more (its blurred
# edge, the page's shadow), as far as the median there is darker than MARGIN_SHADE of
# the paper beside it: a digit written against the margin keeps its ink. Measured
# (`cnn`, the 3rd fine-tuning's line models), with the edge always painted / with 0.95:
# MNIST digits on synthetic paper (2,000 numbers of 5 digits) 93.3% / 93.9%, of 2 to 8
# digits 93.7% / 94.1%; register cells 84.0% / 84.1%; cheques 72.0% / 72.2%. With 0.9
# the cells read 83.3%; with none of the edge painted, 77.9%.
MARGIN_DARKNESS = 0.5
MARGIN_EDGE = 0.06
MARGIN_SHADE = 0.95
# The paper's grey around a pixel is the PAPER_PERCENTILE-th percentile of darkness over
# BACKGROUND_WINDOW pixels along its row, then its column, of a copy reduced to about
# BACKGROUND_SIDE pixels on its short side: the window is wider than a stroke, and the
# percentile takes a printed pattern's thin lines for paper while a bold pen filling
# most of a window stays ink (on plain paper, the middle of a bold stroke would not: its
# paper is a grey opening, as in images.ink). Measured on cheques (default run): the
# median over 15 pixels read 51%, the 30th percentile over 25, 59%; none, 44%.
BACKGROUND_SIDE = 48
BACKGROUND_WINDOW = 25
PAPER_PERCENTILE = 30
# Paper darker than its shading by this fraction of the ink's contrast over most of the
# image is printed with a pattern. Measured, the median over the image (the 5th to 95th
# percentile of images): 0.01-0.07 with MNIST digits on synthetic paper, 0-0.01 on
# register cells, 0.12-0.27 on cheques.
PATTERN = 0.1
# Ink is at least this fraction of the writing's strongest: fainter is the pattern, or
# on plain paper its grain and bleed-through. Measured on plain paper (MNIST digits on
# synthetic paper, 2,000 of them / all register cells, `cnn`): 0.2 reads 94.6% / 64.7%,
# 0.25 93.8% / 68.5%; 0.3 reads as 0.25 on the cells and a point less on the digits.
PATTERN_INK = 0.3
PLAIN_INK = 0.25
# A side of the image darker than this fraction of its length is a scanner's margin.
MARGIN_FILL = 0.85
# A horizontal line longer than this many text heights is a rule, not part of a digit.
LINE_HEIGHTS = 1.5
# A vertical line at the field's edge is its border when it is this much taller than
# the text (a 1 in a tight crop is as tall as the text, no taller).
BORDER_HEIGHTS = 1.15
EDGE_FRACTION = 0.15  # "at the edge": within this fraction of the width from a side
LINE_WIDTH = 0.1  # a border is at most this many times as wide as it is tall
# A crop this many text heights tall is a cell: its tall lines are rules. Measured: the
# cheques' crops are at most 2.9 text heights tall, 99% of the register cells at least 4.5.
CELL_HEIGHTS = 3.5
# Sizes in text heights.
SPECK = 0.3  # a component smaller than this both ways, standing alone, is a speck
MIN_DIGIT = 8  # pixels: a mark less tall than this is never a digit (MNIST's are 20)
NEAR = 0.25  # a detached part of a digit is at most this far above or below it
# A mark less tall than MARK_HEIGHT text heights, off every digit's columns, low on the
# line (a full stop, a comma) or MARK_WIDTH times wider than tall (a dash, an equals sign)
# separates or ends the number: it is not read.
MARK_HEIGHT = 0.35
MARK_WIDTH = 1.5
# The reading reports those at least MARK_LEAST text heights tall and wide (a dash, at
# least MARK_HEIGHT long): smaller, they are specks or what is left of a pattern.
MARK_LEAST = 0.08
# In a cell, a mark that touches a side is what is left of its border or the writing of
# the next cell, unless it is this many text heights wide (a digit joined to a rule that
# runs to the border).
ON_RULE = 1.5
# In a cell, the number's blobs are at most this many text heights apart: a mark further
# to one side is a rule's remains or another entry. Measured on the register cells
# (`cnn`): 0.75 reads 83.9%, 1.0 84.0%, 1.5 83.8%, no limit 83.2%.
NUMBER_GAP = 1.0
# A blob with no digit of its own joins the nearest digit within this many text heights.
NEAR_CENTRE = 0.5


class SegmentError(images.ImageError):
    """No digits found, or too many to be a number."""


@dataclass(frozen=True)
class Mark:
    """A separator or an end mark beside the digits: not read, but where it stands tells
    1.480 from 14.80."""

    mark: str  # ".", a full stop, a comma or a slash; "-", a dash; "=", an equals sign
    box: list[int]  # x, y, w, h in the image's pixels


@dataclass(frozen=True)
class Field:
    """The cleaned ink of a written number, its blobs numbered left to right."""

    ink: np.ndarray  # (H, W) float, 0 off the digits
    labels: np.ndarray  # (H, W) blob number + 1 per ink pixel, 0 elsewhere
    height: float  # the text's height in pixels
    # The separators and end marks on the number's line, left out of its ink, left to right.
    marks: list[Mark] = field(default_factory=list)

    def split(self, centres: list[float]) -> list[tuple[np.ndarray, list[int], bool]]:
        """The ink of each digit whose centre column is given, left to right: (its ink
        cut to its box, that box [x, y, w, h], whether it is whole blobs). A blob holding
        one centre is that digit's; a blob holding several (touching digits) is cut at
        the column of least ink between each two; a blob holding none joins the nearest
        digit if it is close (a broken digit's part), else it is left out."""
        owner = np.full(self.labels.shape, -1)  # the digit each ink pixel is part of
        whole = [True] * len(centres)
        for blob, (rows, cols) in enumerate(ndimage.find_objects(self.labels)):
            mine = self.labels[rows, cols] == blob + 1
            window = owner[rows, cols]  # a view: what is set here is set in owner
            inside = [k for k, c in enumerate(centres) if cols.start <= c < cols.stop]
            if not inside:
                middle = (cols.start + cols.stop) / 2
                nearest = int(np.argmin([abs(c - middle) for c in centres]))
                if abs(centres[nearest] - middle) <= NEAR_CENTRE * self.height:
                    window[mine] = nearest
                continue
            # Columns of the blob's window: one centre keeps the whole blob.
            profile = (self.ink[rows, cols] * mine).sum(0)
            bounds = [0]
            for a, b in itertools.pairwise(inside):
                lo = int(centres[a]) + 1 - cols.start
                hi = max(lo + 1, int(centres[b]) - cols.start)
                bounds.append(lo + int(np.argmin(profile[lo:hi])))
            bounds.append(mine.shape[1])
            for k, left, right in zip(inside, bounds, bounds[1:], strict=False):
                window[:, left:right][mine[:, left:right]] = k
                if len(inside) > 1:  # cut out of touching ink
                    whole[k] = False
        out = []
        boxes = ndimage.find_objects(owner + 1, max_label=len(centres))
        for k, (centre, box) in enumerate(zip(centres, boxes, strict=True)):
            if box is None:  # no blob is its own: take the ink nearest its centre
                near = self._near(centre, centres)
                rows, cols = np.nonzero(near)
                box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
                keep = near[box]
                whole[k] = False
            else:
                keep = owner[box] == k
            rows, cols = box
            xywh = [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start]
            out.append((np.where(keep, self.ink[box], 0.0), [int(v) for v in xywh], whole[k]))
        return out

    def _near(self, centre: float, centres: list[float]) -> np.ndarray:
        """The ink between the midpoints to the neighbouring centres, or failing that the
        ink column nearest the centre."""
        others = np.array([c for c in centres if c != centre])
        left = max([(centre + c) / 2 for c in others if c < centre], default=-np.inf)
        right = min([(centre + c) / 2 for c in others if c > centre], default=np.inf)
        columns = np.arange(self.labels.shape[1])
        keep = (self.labels > 0) & (columns >= left) & (columns < right)
        if not keep.any():
            inked = np.flatnonzero(self.labels.any(0))
            keep = (self.labels > 0) & (columns == inked[np.argmin(np.abs(inked - centre))])
        return keep


def find_field(gray: np.ndarray) -> Field:
    """Grayscale (H, W) in [0, 255] -> the Field of digits written on it."""
    try:  # noise, on the map the check's bar was measured on (images.MAX_INK_SHARE)
        images.check_ink(images.ink(gray))
    except images.ImageError as e:
        raise SegmentError(str(e)) from None  # as for a blank page: nothing to read
    ink, paper_width = paper_ink(gray)
    if ink.max() <= 0:
        raise SegmentError("no digits found (the image is blank)")
    peak = _writing_peak(ink, ink > 0)
    mask = ink >= INK_LEVEL * peak
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    sure = np.zeros(count + 1, bool)
    sure[labels[ink >= SURE_INK * peak]] = True
    sure[0] = False
    mask = sure[labels]
    mask = _without_margins(mask)
    mask = _without_lines(mask, paper_width)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        raise SegmentError("no digits found (only lines or a margin)")
    boxes = ndimage.find_objects(labels)
    height = _text_height(labels, count)
    blobs, marks = _blobs(boxes, height)
    if mask.shape[0] >= CELL_HEIGHTS * height:
        blobs = _main_line(blobs, boxes, labels)
    if not blobs:
        raise SegmentError("no digits found (only specks and lines)")
    if len(blobs) > MAX_DIGITS:
        raise SegmentError(f"more than {MAX_DIGITS} separate marks: not a number")
    blob_of = np.zeros(count + 1, np.int32)
    for number, members in enumerate(blobs):
        blob_of[np.array(members) + 1] = number + 1
    blob_labels = blob_of[labels]
    on_line = _marks(marks, [m for b in blobs for m in b], boxes, height, mask.shape)
    return Field(np.where(blob_labels > 0, ink, 0.0), blob_labels, height, on_line)


def paper_ink(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """How much darker than the paper around it each pixel is (images.ink's map, with
    a scanner's dark margin painted over as paper and a printed background pattern
    taken as paper: a low percentile of darkness around it, over more than a stroke),
    and the paper's width between the margins."""
    gray = np.asarray(gray, np.float32)
    if np.median(gray) <= 127 and np.percentile(gray, 90) < 128:
        return images.ink(gray), gray.shape[1]  # light ink on dark ground: a drawing
    gray, paper_width = _painted_margins(gray)
    darkness = 255.0 - gray
    small = max(1, min(gray.shape) // BACKGROUND_SIDE)
    coarse = darkness[::small, ::small]
    # The paper's shading: a grey opening wider than any stroke.
    paper = ndimage.grey_opening(coarse, size=(max(3, min(coarse.shape) // 4),) * 2)
    threshold = PLAIN_INK
    if np.median(coarse - paper) > PATTERN * (np.percentile(coarse, 99.5) - np.median(coarse)):
        # A printed pattern: paper is a low percentile of darkness, separable, along the
        # rows then along the columns (far faster than a square window).
        paper = ndimage.percentile_filter(coarse, PAPER_PERCENTILE, size=(1, BACKGROUND_WINDOW))
        paper = ndimage.percentile_filter(paper, PAPER_PERCENTILE, size=(BACKGROUND_WINDOW, 1))
        threshold = PATTERN_INK
    paper = np.repeat(np.repeat(paper, small, 0), small, 1)[: gray.shape[0], : gray.shape[1]]
    ink = (darkness - paper).clip(0, None)
    if ink.max() < 1.0:
        return np.zeros_like(ink), paper_width
    peak = _writing_peak(ink, ink >= threshold * np.percentile(ink, 99.5))
    return np.where(ink >= threshold * peak, ink, 0.0), paper_width


def _writing_peak(ink: np.ndarray, marks: np.ndarray) -> float:
    """The strong ink of the writing among the marks: not that of ruled lines or of a
    cell's borders (thicker and darker than a thin pen), unless nothing else is there."""
    height, width = marks.shape
    rules = _runs(marks, max(3, width // 2), axis=1) | _runs(marks, max(3, height * 4 // 5), 0)
    writing = ink[marks & ~rules]
    return float((writing if writing.size else ink[marks]).max())


def _painted_margins(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """The image with the dark bands along its sides (a scanner's margin, the next
    page's edge) painted the paper's grey, so that they set no ink level; and the width
    left between them."""
    gray = gray.copy()
    paper = np.percentile(gray, 90)
    for axis in (0, 1):
        median = np.median(gray, axis=axis)
        dark = median < MARGIN_DARKNESS * paper
        start, stop = _leading(dark), len(dark) - _leading(dark[::-1])
        edge = int(MARGIN_EDGE * len(dark)) + 1
        if start:
            start += _shaded(median[start : start + 2 * edge], edge)
        if stop < len(dark):
            stop -= _shaded(median[max(0, stop - 2 * edge) : stop][::-1], edge)
        index = np.r_[0:start, max(start, stop) : len(dark)]
        if axis == 0:
            gray[:, index[index < gray.shape[1]]] = paper
            width = max(1, stop - start)
        else:
            gray[index[index < gray.shape[0]]] = paper
    return gray, width


def _shaded(median: np.ndarray, edge: int) -> int:
    """How many of the first `edge` rows or columns beside a margin (their medians,
    outward first) are its shade: darker than MARGIN_SHADE of the paper there."""
    if median.size == 0:  # the margin reaches across the whole image
        return 0
    return _leading(median[:edge] < MARGIN_SHADE * np.percentile(median, 90))


def _leading(flags: np.ndarray) -> int:
    """How many of the flags, from the first, are True before the first False."""
    return int(np.argmin(flags)) if not flags.all() else len(flags)


def _without_margins(mask: np.ndarray) -> np.ndarray:
    """Clear the rows and columns along the sides that are nearly all dark."""
    mask = mask.copy()
    for axis in (0, 1):
        fill = mask.mean(axis=axis)  # per column (axis 0) or per row (axis 1)
        for order in (slice(None), slice(None, None, -1)):
            run = np.argmin(fill[order] >= MARGIN_FILL) if (fill < MARGIN_FILL).any() else 0
            if run:
                index = np.arange(len(fill))[order][:run]
                if axis == 0:
                    mask[:, index] = False
                else:
                    mask[index] = False
    return mask


def _without_lines(mask: np.ndarray, paper_width: int) -> np.ndarray:
    """Remove long horizontal lines and tall vertical ones (at the sides; anywhere in a
    cell much taller than its writing), then restore the strokes that crossed them."""
    height, width = mask.shape
    # Tall: against the marked rows (a cell's border, its ends painted over as margin).
    marked = np.flatnonzero(mask.any(1))
    tall_side = int(marked[-1] - marked[0] + 1) if marked.size else 0
    # A scanned rule is skewed and broken here and there: thickened across itself and
    # closed along itself, it is one run. A cell's border drifts by up to 6 columns over
    # its height and may be printed as dashes a tenth of it apart. A border is at least
    # half the image tall: a tall 1 in a cell is not one.
    flat = _thickened(mask, (3, 1), (1, 3))
    upright = _thickened(mask, (1, 7), (max(5, height // 10), 1))
    across = _runs(flat, max(3, paper_width // 2), axis=1) & mask
    down = _thin(_runs(upright, max(3, int(0.8 * tall_side), height // 2), axis=0) & mask)
    lines = across | down
    if not lines.any():
        return mask
    rest = mask & ~lines
    labels, count = ndimage.label(rest, structure=np.ones((3, 3)))
    if count == 0:  # nothing but lines: they are the writing (a row of strokes), or nothing
        return mask
    text = _text_height(labels, count)
    # Confirm: a rule is longer than the text is tall, a border taller than the text.
    lines = np.zeros_like(mask)
    if _runs(across, int(LINE_HEIGHTS * text) + 1, axis=1).any():
        lines |= across
    tall = _runs(down, int(BORDER_HEIGHTS * text) + 1, axis=0)
    if height < CELL_HEIGHTS * text:  # a tight crop: a 1 may be a tall line inside it
        tall[:, int(EDGE_FRACTION * width) : width - int(EDGE_FRACTION * width)] = False
    lines |= tall
    if not lines.any():
        return mask
    rest = mask & ~lines
    # A stroke that crossed a line continues on both sides of it: bridge the gap.
    thickness = int(ndimage.sum(across[:, across.any(0)]) / max(1, across.any(0).sum())) + 2
    bridged = ndimage.binary_closing(rest, np.ones((thickness + 2, 1))) & across
    bridged |= ndimage.binary_closing(rest, np.ones((1, thickness + 2))) & tall
    return rest | (bridged & lines)


def _thin(lines: np.ndarray) -> np.ndarray:
    """The upright lines no wider than LINE_WIDTH of their height: a border, not a
    bold digit's stem or body."""
    labels, count = ndimage.label(lines, structure=np.ones((3, 3)))
    if count == 0:
        return lines
    boxes = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(lines, labels, np.arange(1, count + 1))
    tall = np.array([b[0].stop - b[0].start for b in boxes])
    keep = np.r_[False, areas <= LINE_WIDTH * tall * tall]
    return keep[labels]


def _thickened(mask: np.ndarray, across: tuple[int, int], along: tuple[int, int]) -> np.ndarray:
    return ndimage.binary_closing(ndimage.binary_dilation(mask, np.ones(across)), np.ones(along))


def _runs(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels of runs of at least `length` along `axis`: a binary opening by a line
    of that length, in time linear in the pixels whatever the length."""
    lines = mask if axis == 1 else mask.T
    # Each row laid end to end with a blank before and after, so that no run spans two.
    edges = np.flatnonzero(np.diff(np.pad(lines, ((0, 0), (1, 1))).astype(np.int8).ravel()))
    starts, stops = edges[::2], edges[1::2]
    keep = np.zeros(lines.shape[0] * (lines.shape[1] + 2) + 1, np.int32)
    long = stops - starts >= length
    np.add.at(keep, starts[long] + 1, 1)
    np.add.at(keep, stops[long] + 1, -1)
    out = (np.cumsum(keep)[:-1] > 0).reshape(lines.shape[0], -1)[:, 1:-1]
    return out if axis == 1 else out.T


def _text_height(labels: np.ndarray, count: int) -> float:
    """The height of the writing: the components' heights, median by ink (so that specks
    and a broken digit's small parts count for little)."""
    heights = np.array([b[0].stop - b[0].start for b in ndimage.find_objects(labels)])
    areas = ndimage.sum_labels(labels > 0, labels, np.arange(1, count + 1))
    order = np.argsort(heights)
    weight = np.cumsum(areas[order])
    return float(heights[order][np.searchsorted(weight, weight[-1] / 2)])


def _blobs(
    boxes: list[tuple[slice, slice]], height: float
) -> tuple[list[list[int]], list[tuple[str, int]]]:
    """Components grouped into blobs, left to right. Tall parts stacked in the same
    columns are one digit (a 4's two strokes, a 5 broken at its stem; neighbours side by
    side are not, however slanted); a small part joins the blob it overlaps most, if it
    is near it (a 5's floating bar); marks that are neither digits nor near one (specks,
    dashes, tick marks) are dropped. With the blobs, the separators and end marks among
    those: ("." or "-", component)."""
    least = max(0.5 * height, MIN_DIGIT)
    tall = [i for i, b in enumerate(boxes) if b[0].stop - b[0].start >= least]
    marks: list[tuple[str, int]] = []
    if not tall:
        return [], marks
    blobs: list[list[int]] = []
    for i in sorted(tall, key=lambda i: boxes[i][1].start):
        if blobs:
            cols, rows = _span(boxes, blobs[-1]), _rows(boxes, blobs[-1])
            narrow = min(cols.stop - cols.start, boxes[i][1].stop - boxes[i][1].start)
            short = min(rows.stop - rows.start, boxes[i][0].stop - boxes[i][0].start)
            if (
                _overlap(cols, boxes[i][1]) >= 0.7 * narrow
                and _overlap(rows, boxes[i][0]) <= 0.5 * short
                and _gap(rows, boxes[i][0]) <= NEAR * height
            ):
                blobs[-1].append(i)
                continue
        blobs.append([i])
    band_top = np.median([boxes[i][0].start for i in tall])
    band_bottom = np.median([boxes[i][0].stop for i in tall])
    for i, (rows, cols) in enumerate(boxes):
        if i in tall:
            continue
        h, w = rows.stop - rows.start, cols.stop - cols.start
        best, owner = max((_overlap(cols, _span(boxes, b)), n) for n, b in enumerate(blobs))
        near = _gap(rows, _rows(boxes, blobs[owner])) <= NEAR * height
        inside = rows.start >= band_top - 0.3 * height and rows.stop <= band_bottom + 0.3 * height
        low = rows.start > (band_top + band_bottom) / 2  # starts below the line's middle
        if best >= 0.3 * w and near and max(h, w) >= SPECK / 2 * height:
            blobs[owner].append(i)  # a detached part: a 5's top bar, a 4's stroke
        elif h < MARK_HEIGHT * height and (low or w > MARK_WIDTH * h):
            # A separator or an end mark: a full stop, a comma, a dash, an equals sign.
            marks.append(("-" if w > MARK_WIDTH * h else ".", i))
        elif inside and h >= MIN_DIGIT and max(h, w) >= SPECK * height:
            blobs.append([i])  # a short digit, or a part of a broken one
        # else: a speck, a tick mark, a mark outside the line of text
    return sorted(blobs, key=lambda b: _span(boxes, b).start), marks


def _marks(
    marks: list[tuple[str, int]], number: list[int], boxes, height: float, shape
) -> list[Mark]:
    """The marks that sit on the number's line, from its first digit to a text height
    past its last (a register cell's marks elsewhere are other entries' or none), not on
    the image's top, bottom or left edge (a crop's remains; an end mark may end it), two
    dashes one above the other as one "=", with their boxes [x, y, w, h], left to right."""
    cols, rows = _span(boxes, number), _rows(boxes, number)
    found: list[tuple[str, slice, slice]] = []
    for kind, i in sorted(marks, key=lambda m: boxes[m[1]][1].start):
        r, c = boxes[i]
        centre, middle = (c.start + c.stop) / 2, (r.start + r.stop) / 2
        if (
            not cols.start < centre < cols.stop + height
            or not rows.start < middle < rows.stop + NEAR * height  # not under the number
            or min(r.stop - r.start, c.stop - c.start) < MARK_LEAST * height
            or (kind == "-" and c.stop - c.start < MARK_HEIGHT * height)
            or 0 in (r.start, c.start)
            or r.stop == shape[0]
        ):
            continue  # a speck or a pattern's remains; a line's remains under the number
        if found and kind == found[-1][0] == "-":
            last = found[-1][2]
            if _overlap(c, last) >= 0.5 * min(c.stop - c.start, last.stop - last.start):
                kind, r, c = "=", _union(found[-1][1], r), _union(last, c)
                found.pop()
        found.append((kind, r, c))
    return [
        Mark(kind, [c.start, r.start, c.stop - c.start, r.stop - r.start]) for kind, r, c in found
    ]


def _union(a: slice, b: slice) -> slice:
    return slice(min(a.start, b.start), max(a.stop, b.stop))


def _main_line(blobs: list[list[int]], boxes, labels: np.ndarray) -> list[list[int]]:
    """In a cell much taller than its writing: the blobs next to each other on the line of
    the heaviest blob (ink times height: a written digit outweighs a printed caption's
    small letters) that does not touch the cell's sides (the remains of its borders, the
    next entry cut by the crop), leaving out other lines (a caption, a note above the
    entry) and marks far to one side."""
    height, width = labels.shape

    def touches(b: list[int]) -> bool:
        rows, cols = _rows(boxes, b), _span(boxes, b)
        return rows.start == 0 or rows.stop == height or cols.start == 0 or cols.stop == width

    def sliver(b: list[int]) -> bool:  # a mark along a side, not as wide as a digit on a rule
        cols = _span(boxes, b)
        return touches(b) and cols.stop - cols.start < ON_RULE * text

    text = _text_height(labels, len(boxes))
    inside = [b for b in blobs if not sliver(b)]
    if not inside:
        return []
    areas = ndimage.sum_labels(labels > 0, labels, np.arange(1, len(boxes) + 1))

    def weight(b: list[int]) -> float:
        rows = _rows(boxes, b)
        return sum(areas[m] for m in b) * (rows.stop - rows.start)

    main = max([b for b in inside if not touches(b)] or inside, key=weight)
    band = _rows(boxes, main)
    line = [
        b
        for b in inside
        if _overlap(rows := _rows(boxes, b), band)
        >= 0.5 * min(rows.stop - rows.start, band.stop - band.start)
    ]
    line.sort(key=lambda b: _span(boxes, b).start)

    def near(a: list[int], b: list[int]) -> bool:  # a left of b, within NUMBER_GAP
        return _span(boxes, b).start - _span(boxes, a).stop <= NUMBER_GAP * text

    first = last = line.index(main)
    while first > 0 and near(line[first - 1], line[first]):
        first -= 1
    while last < len(line) - 1 and near(line[last], line[last + 1]):
        last += 1
    return line[first : last + 1]


def _overlap(a: slice, b: slice) -> int:
    return max(0, min(a.stop, b.stop) - max(a.start, b.start))


def _gap(a: slice, b: slice) -> int:
    return max(0, max(a.start, b.start) - min(a.stop, b.stop))


def _rows(boxes, members: list[int]) -> slice:
    return slice(min(boxes[m][0].start for m in members), max(boxes[m][0].stop for m in members))


def _span(boxes, members: list[int]) -> slice:
    return slice(min(boxes[m][1].start for m in members), max(boxes[m][1].stop for m in members))

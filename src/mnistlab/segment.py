"""A written number's image -> the pieces its digits are made of, and the candidate
digits (runs of adjacent pieces) for the reader to score with the classifier.

Steps: find the ink on the paper (images.ink); cut away a scanner's dark margin; remove
ruled lines, underlines and a box drawn around the field (restoring the strokes that
cross them); drop specks and tick marks; group the rest into blobs (a broken digit's
parts overlap horizontally); cut wide blobs, which hold touching digits, at the thin
columns of their projection profile. The reader chooses among the cuts (reader.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mnistlab import images
from mnistlab.config import MAX_DIGITS

# Hysteresis, in fractions of the strongest ink: a stroke is ink above INK_LEVEL that
# reaches SURE_INK somewhere; fainter marks are paper grain, shading or bleed-through.
INK_LEVEL = 0.2
SURE_INK = 0.45
# A side of the image darker than this fraction of its length is a scanner's margin.
MARGIN_FILL = 0.85
# A horizontal line longer than this many text heights is a rule, not part of a digit.
LINE_HEIGHTS = 1.5
# A vertical line at the field's edge is its border when it is this much taller than
# the text (a 1 in a tight crop is as tall as the text, no taller).
BORDER_HEIGHTS = 1.15
EDGE_FRACTION = 0.15  # "at the edge": within this fraction of the width from a side
# Sizes in text heights.
SPECK = 0.3  # a component smaller than this both ways, standing alone, is a speck
MIN_DIGIT = 8  # pixels: a mark less tall than this is never a digit (MNIST's are 20)
NEAR = 0.25  # a detached part of a digit is at most this far above or below it
MAX_DIGIT_WIDTH = 1.3  # a candidate digit wider than this is not tried
MIN_PIECE = 0.15  # cuts at least this far apart, and from a blob's sides
# Blobs narrower than this may still be one digit or two (11, 17): cut those too, but
# only at clear waists of the profile.
CUT_WIDTH = 0.8
# A cut goes where a column holds at most this many pens' width of ink: touching digits
# meet in about one stroke; a 0 or an 8 has two down every column.
WAIST = 3.0
NARROW_WAIST = 1.2
MAX_GAP = 0.35  # a candidate digit may join pieces across a gap this wide at most
MAX_PIECES = 4  # pieces per candidate digit
MAX_CUTS = 12  # per blob: the thinnest columns


class SegmentError(images.ImageError):
    """No digits found, or too many to be a number."""


@dataclass(frozen=True)
class Piece:
    """Columns [left, right) of the ink, taken from the components of one blob."""

    left: int
    right: int
    blob: int
    crossed: int = 0  # strokes that the cut at `left` goes through (0: not a cut)


@dataclass(frozen=True)
class Field:
    """The cleaned ink of a written number and its pieces, left to right."""

    ink: np.ndarray  # (H, W) float, 0 off the digits
    labels: np.ndarray  # (H, W) blob number + 1 per ink pixel, 0 elsewhere
    height: float  # the text's height in pixels
    width: float  # a digit's usual width here: the median blob's
    pieces: list[Piece]

    def candidates(self) -> list[tuple[int, int]]:
        """Runs [i, j) of adjacent pieces that may be one digit: not too wide, no wide gap."""
        runs = []
        for i in range(len(self.pieces)):
            for j in range(i + 1, min(i + MAX_PIECES, len(self.pieces)) + 1):
                first, last = self.pieces[i], self.pieces[j - 1]
                if j > i + 1 and last.right - first.left > MAX_DIGIT_WIDTH * self.height:
                    break
                gap = self.pieces[j - 1].left - self.pieces[j - 2].right if j > i + 1 else 0
                if gap > MAX_GAP * self.height:
                    break
                runs.append((i, j))
        return runs

    def crop(self, i: int, j: int) -> tuple[np.ndarray, list[int]]:
        """The ink of pieces [i, j) (whole blobs, or the cut columns of a blob), cut to
        its box, and that box [x, y, w, h] in the image's pixels."""
        # Every piece's ink lies within its columns: work on those only.
        lo = min(p.left for p in self.pieces[i:j])
        hi = max(p.right for p in self.pieces[i:j])
        labels = self.labels[:, lo:hi]
        keep = np.zeros(labels.shape, bool)
        for k in range(i, j):
            piece = self.pieces[k]
            mine = labels == piece.blob + 1
            if self._is_cut(k):  # only this piece's columns of its blob
                mine[:, : piece.left - lo] = False
                mine[:, piece.right - lo :] = False
            keep |= mine
        rows, cols = np.nonzero(keep)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        ink = np.where(keep, self.ink[:, lo:hi], 0.0)[top:bottom, left:right]
        return ink, [int(lo + left), int(top), int(right - left), int(bottom - top)]

    def _is_cut(self, k: int) -> bool:
        """Whether piece k shares its blob with a neighbour (pieces are in order)."""
        blob = self.pieces[k].blob
        return any(
            0 <= n < len(self.pieces) and self.pieces[n].blob == blob for n in (k - 1, k + 1)
        )


def find_field(gray: np.ndarray) -> Field:
    """Grayscale (H, W) in [0, 255] -> the Field of digits written on it."""
    ink = images.ink(gray)
    if ink.max() <= 0:
        raise SegmentError("no digits found (the image is blank)")
    peak = np.percentile(ink[ink > 0], 99)
    mask = ink >= INK_LEVEL * peak
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    sure = np.zeros(count + 1, bool)
    sure[labels[ink >= SURE_INK * peak]] = True
    sure[0] = False
    mask = sure[labels]
    mask = _without_margins(mask)
    mask = _without_lines(mask)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        raise SegmentError("no digits found (only lines or a margin)")
    boxes = ndimage.find_objects(labels)
    height = _text_height(labels, count)
    blobs = _blobs(boxes, height)
    if not blobs:
        raise SegmentError("no digits found (only specks and lines)")
    if len(blobs) > MAX_DIGITS:
        raise SegmentError(f"more than {MAX_DIGITS} separate marks: not a number")
    blob_of = np.zeros(count + 1, np.int32)
    for number, members in enumerate(blobs):
        blob_of[np.array(members) + 1] = number + 1
    blob_labels = blob_of[labels]
    pieces = []
    for number in range(len(blobs)):
        pieces += _cut(blob_labels == number + 1, number, height)
    width = float(np.median([_span(boxes, m).stop - _span(boxes, m).start for m in blobs]))
    return Field(np.where(blob_labels > 0, ink, 0.0), blob_labels, height, width, pieces)


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


def _without_lines(mask: np.ndarray) -> np.ndarray:
    """Remove long horizontal lines, and tall vertical ones at the sides, then restore
    the strokes that crossed them."""
    height, width = mask.shape
    across = _runs(mask, max(3, width // 2), axis=1)
    down = _runs(mask, max(3, int(0.8 * height)), axis=0)
    down[:, int(EDGE_FRACTION * width) : width - int(EDGE_FRACTION * width)] = False
    lines = across | down
    if not lines.any():
        return mask
    rest = mask & ~lines
    labels, count = ndimage.label(rest, structure=np.ones((3, 3)))
    if count == 0:
        return rest
    text = _text_height(labels, count)
    # Confirm: a rule is longer than the text is tall, a border taller than the text.
    lines = np.zeros_like(mask)
    if _runs(across, int(LINE_HEIGHTS * text) + 1, axis=1).any():
        lines |= across
    tall = _runs(down, int(BORDER_HEIGHTS * text) + 1, axis=0)
    lines |= tall
    if not lines.any():
        return mask
    rest = mask & ~lines
    # A stroke that crossed a line continues on both sides of it: bridge the gap.
    thickness = int(ndimage.sum(across[:, across.any(0)]) / max(1, across.any(0).sum())) + 2
    bridged = ndimage.binary_closing(rest, np.ones((thickness + 2, 1))) & across
    bridged |= ndimage.binary_closing(rest, np.ones((1, thickness + 2))) & tall
    return rest | (bridged & lines)


def _run_bounds(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of True along the rows starts and stops: indices into the rows laid
    end to end, each with a blank before and after (so that no run spans two rows)."""
    padded = np.pad(lines, ((0, 0), (1, 1))).astype(np.int8).ravel()
    edges = np.flatnonzero(np.diff(padded))
    return edges[::2], edges[1::2]


def _runs(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels of runs of at least `length` along `axis`: a binary opening by a line
    of that length, in time linear in the pixels whatever the length."""
    lines = mask if axis == 1 else mask.T
    starts, stops = _run_bounds(lines)
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


def _blobs(boxes: list[tuple[slice, slice]], height: float) -> list[list[int]]:
    """Components grouped into blobs, left to right. Tall parts stacked in the same
    columns are one digit (a 4's two strokes, a 5 broken at its stem; neighbours side by
    side are not, however slanted); a small part joins the blob it overlaps most, if it
    is near it (a 5's floating bar); marks that are neither digits nor near one (specks,
    dashes, tick marks) are dropped."""
    least = max(0.5 * height, MIN_DIGIT)
    tall = [i for i, b in enumerate(boxes) if b[0].stop - b[0].start >= least]
    if not tall:
        return []
    blobs: list[list[int]] = []
    for i in sorted(tall, key=lambda i: boxes[i][1].start):
        if blobs:
            cols, rows = _span(boxes, blobs[-1]), _rows(boxes, blobs[-1])
            narrow = min(cols.stop - cols.start, boxes[i][1].stop - boxes[i][1].start)
            short = min(rows.stop - rows.start, boxes[i][0].stop - boxes[i][0].start)
            if (
                _overlap(cols, boxes[i][1]) >= 0.7 * narrow
                and _overlap(rows, boxes[i][0]) <= 0.5 * short
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
        if best >= 0.3 * w and near and max(h, w) >= SPECK / 2 * height:
            blobs[owner].append(i)  # a detached part: a 5's top bar, a 4's stroke
        elif inside and h >= MIN_DIGIT and max(h, w) >= SPECK * height:
            blobs.append([i])  # a short digit, or a part of a broken one
        # else: a speck, a dash, a tick mark, a mark outside the line of text
    return sorted(blobs, key=lambda b: _span(boxes, b).start)


def _cut(blob: np.ndarray, number: int, height: float) -> list[Piece]:
    """A blob -> its pieces: cut where few ink pixels stand in a column, if it is wide
    enough to hold touching digits."""
    cols = np.flatnonzero(blob.any(0))
    left, right = int(cols[0]), int(cols[-1]) + 1
    width = right - left
    if width < 2 * MIN_PIECE * height + 2:
        return [Piece(left, right, number)]
    profile = blob[:, left:right].sum(0).astype(float)
    smooth = ndimage.uniform_filter1d(profile, 3)
    # The pen's width: the median vertical run of ink down the columns.
    starts, stops = _run_bounds(blob[:, left:right].T)
    pen = max(1.0, float(np.median(stops - starts)))
    waist = (WAIST if width > CUT_WIDTH * height else NARROW_WAIST) * pen
    edge = int(MIN_PIECE * height)
    minima = [
        c
        for c in range(edge, width - edge)
        if smooth[c] <= smooth[c - 1] and smooth[c] <= smooth[c + 1] and profile[c] <= waist
    ]
    chosen: list[int] = []
    for c in sorted(minima, key=lambda c: (smooth[c], c)):
        if all(abs(c - k) >= edge for k in chosen):
            chosen.append(c)
        if len(chosen) == MAX_CUTS:
            break
    cuts = sorted(left + c for c in chosen)
    # Strokes crossed: runs of ink down the cut column.
    crossed = [int(np.count_nonzero(np.diff(blob[:, c].astype(np.int8)) == 1)) for c in cuts]
    bounds = [left, *cuts, right]
    return [
        Piece(a, b, number, k) for a, b, k in zip(bounds, bounds[1:], [0, *crossed], strict=False)
    ]


def _overlap(a: slice, b: slice) -> int:
    return max(0, min(a.stop, b.stop) - max(a.start, b.start))


def _gap(a: slice, b: slice) -> int:
    return max(0, max(a.start, b.start) - min(a.stop, b.stop))


def _rows(boxes, members: list[int]) -> slice:
    return slice(min(boxes[m][0].start for m in members), max(boxes[m][0].stop for m in members))


def _span(boxes, members: list[int]) -> slice:
    return slice(min(boxes[m][1].start for m in members), max(boxes[m][1].stop for m in members))

"""Segmentation on built cases: real MNIST test digits on paper, with the noise of forms,
read by the line model that ships with the package and split by segment.Field.split."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from mnistlab import images
from mnistlab.read import lines, segment

TOP = 22  # where the digits' ink starts on the canvas
LINE_MODEL = lines.LineModel.load()


def digit(mnist, label: int, nth: int = 0) -> np.ndarray:
    """A test digit of that label, at twice the size, cropped to its ink: (H, W) in [0, 1]."""
    index = np.flatnonzero(mnist.y_test == label)[nth]
    image = Image.fromarray(mnist.x_test[index]).resize((56, 56), Image.Resampling.BICUBIC)
    ink = np.asarray(image, np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(1) > 0.3), np.flatnonzero(ink.max(0) > 0.3)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def paper(*glyphs_at: tuple[np.ndarray, int], width: int = 260) -> np.ndarray:
    """Glyphs placed at column offsets on a 100-px-tall ink canvas, from row TOP down."""
    canvas = np.zeros((100, width), np.float32)
    for glyph, left in glyphs_at:
        region = canvas[TOP : TOP + glyph.shape[0], left : left + glyph.shape[1]]
        np.maximum(region, glyph, out=region)
    return canvas


def scan(ink: np.ndarray) -> np.ndarray:
    """Ink -> dark ink on light, slightly uneven paper, as gray levels."""
    cols = np.linspace(0, 1, ink.shape[1])[None, :]
    light = 230 - 20 * cols
    return (light - ink.clip(0, 1) * (light - 30)).astype(np.float32)


def read(field: segment.Field) -> tuple[str, list[list[int]], list[bool]]:
    """What the line model reads in the field, and each digit's box and wholeness."""
    line = lines.line_image(field)
    (p,) = LINE_MODEL([line.image])
    frames = lines.decode(p)
    text = "".join(str(lines.digit_probabilities(p, f).argmax()) for f in frames)
    split = field.split([line.column(f) for f in frames])
    return text, [box for _, box, _ in split], [whole for *_, whole in split]


def boxed(boxes: list[list[int]], placed) -> bool:
    """Each digit's box spans its glyph's columns (within 2 px each side)."""
    return len(boxes) == len(placed) and all(
        abs(x - a) <= 2 and abs(x + w - b) <= 2
        for (x, _, w, _), (a, b) in zip(boxes, spans(*placed), strict=True)
    )


def spans(*glyphs_at):
    return [(left, left + g.shape[1]) for g, left in glyphs_at]


def test_two_digits_apart_are_two_blobs_read_whole(mnist):
    placed = [(digit(mnist, 2), 40), (digit(mnist, 3), 140)]
    field = segment.find_field(scan(paper(*placed)))
    assert field.labels.max() == 2
    text, boxes, whole = read(field)
    assert text == "23" and boxed(boxes, placed) and all(whole)
    assert field.height == pytest.approx(placed[0][0].shape[0], abs=8)


def test_a_touching_pair_is_cut_where_they_meet(mnist):
    left, right = digit(mnist, 4), digit(mnist, 7)
    # Overlap the boxes until the ink touches.
    gap = next(g for g in range(0, -30, -1) if _touches(left, right, g))
    placed = [(left, 40), (right, 40 + left.shape[1] + gap)]
    field = segment.find_field(scan(paper(*placed)))
    assert field.labels.max() == 1  # one blob of ink ...
    text, boxes, whole = read(field)
    assert text == "47" and whole == [False, False]  # ... read as two digits, cut
    meet = 40 + left.shape[1] + gap
    assert abs(boxes[1][0] - meet) <= 6 and abs(boxes[0][0] + boxes[0][2] - meet) <= 6


def test_a_broken_five_is_one_blob():
    ink = Image.new("L", (200, 100), 0)
    draw = ImageDraw.Draw(ink)
    draw.line([(70, 22), (110, 20)], fill=255, width=5)  # the floating top bar
    draw.line([(70, 30), (66, 52)], fill=255, width=5)  # the stem, below a gap
    draw.arc([(60, 45), (112, 82)], start=-100, end=150, fill=255, width=5)  # the bowl
    field = segment.find_field(scan(np.asarray(ink, np.float32) / 255))
    assert field.labels.max() == 1
    ((_, (_, y, _, h), whole),) = field.split([90.0])
    assert whole and y <= 20 and y + h >= 80  # the bar is in it


def test_a_one_beside_a_seven_stays_apart(mnist):
    placed = [(digit(mnist, 1), 60), (digit(mnist, 7), 60 + digit(mnist, 1).shape[1] + 6)]
    field = segment.find_field(scan(paper(*placed)))
    assert field.labels.max() == 2
    text, boxes, _ = read(field)
    assert text == "17" and boxed(boxes, placed)


def test_specks_are_dropped(mnist):
    placed = [(digit(mnist, 6), 60), (digit(mnist, 8), 130)]
    ink = paper(*placed)
    rng = np.random.default_rng(0)
    specks = [
        (int(r), int(c))
        for r, c in zip(rng.integers(5, 95, 12), rng.integers(5, 255, 12), strict=True)
    ]
    specks = [(r, c) for r, c in specks if ink[r - 3 : r + 4, c - 3 : c + 4].max() == 0]
    for r, c in specks:
        ink[r : r + 2, c : c + 2] = 1.0
    field = segment.find_field(scan(ink))
    assert len(specks) >= 5
    assert all(field.labels[r, c] == 0 for r, c in specks)
    assert field.labels.max() == 2 and read(field)[0] == "68"


def test_an_underline_is_removed_and_the_digits_kept(mnist):
    # "359" by ten writers, underlined through the digits' feet. Removing the line takes
    # the ink it crossed with it, so a digit can lose its foot: the line model then reads
    # one 3 of the ten as "93" (the run's reader, with the other line model, as one digit).
    kept = 0
    for nth in range(10):
        placed = [(digit(mnist, d, nth), left) for d, left in ((3, 40), (5, 110), (9, 180))]
        ink = paper(*placed)
        foot = TOP + min(g.shape[0] for g, _ in placed)
        ink[foot - 5 : foot - 2, 20:240] = 1.0
        field = segment.find_field(scan(ink))
        assert not field.labels[foot - 4, 20:35].any()  # the line left of the digits
        assert field.labels.max() == 3
        text, boxes, _ = read(field)
        kept += len(text) == 3 and boxed(boxes, placed)  # what they are: the classifier's job
    assert kept >= 9


def test_a_box_around_the_field_is_removed(mnist):
    placed = [(digit(mnist, 0), 50), (digit(mnist, 4), 130)]
    ink = paper(*placed)
    ink[8:11, 10:250] = ink[90:93, 10:250] = 1.0
    ink[8:93, 10:13] = ink[8:93, 247:250] = 1.0
    field = segment.find_field(scan(ink))
    assert not field.labels[:, :20].any() and not field.labels[:, 240:].any()
    assert not field.labels[:12].any() and not field.labels[88:].any()
    assert field.labels.max() == 2
    text, boxes, _ = read(field)
    assert text == "04" and boxed(boxes, placed)


def test_a_dark_scanner_margin_is_cut_away(mnist):
    placed = [(digit(mnist, 2), 60), (digit(mnist, 7), 140)]
    gray = scan(paper(*placed))
    gray[:, :25] = 20  # black along the left side
    field = segment.find_field(gray)
    assert not field.labels[:, :25].any()
    assert field.labels.max() == 2 and read(field)[0] == "27"


def test_a_digit_written_against_a_dark_margin_keeps_its_ink(mnist):
    """The margin's edge is painted as paper only as far as it is shaded: the 4 starts 4
    columns from the margin, inside the MARGIN_EDGE (16 columns) once painted whole."""
    placed = [(digit(mnist, 2), 40), (digit(mnist, 7), 110), (digit(mnist, 4), 176)]
    gray = scan(paper(*placed))
    gray[:, 176 + digit(mnist, 4).shape[1] + 4 :] = 20  # black along the right side
    field = segment.find_field(gray)
    glyph = digit(mnist, 4)
    region = field.ink[TOP : TOP + glyph.shape[0], 176 : 176 + glyph.shape[1]]
    assert (region > 0).sum() >= 0.9 * (glyph > 0.3).sum()
    assert read(field)[0] == "274"


def test_a_margin_across_the_whole_image_is_nothing_to_read():
    """Every column darker than the paper (a dark photo under a light band): no crash."""
    gray = np.full((100, 200), 30, np.float32)
    gray[:20] = 240
    with pytest.raises(segment.SegmentError):
        segment.find_field(gray)


@pytest.mark.parametrize("nth", [0, 1, 2])
def test_a_bold_digit_on_a_rule_stays_whole(mnist, nth):
    """The middle of a bold stroke is ink, not paper, and its stem is not a border."""
    bold = {label: ndimage.grey_dilation(digit(mnist, label, nth), size=(5, 5)) for label in (8, 9)}
    for label, glyph in bold.items():
        placed = [(digit(mnist, 4), 30), (glyph, 90), (digit(mnist, 3), 170)]
        ink = paper(*placed)[12:88]  # a tight crop: under twice the text's height
        ink[60:63, 10:250] = 1.0
        field = segment.find_field(scan(ink))
        region = field.ink[TOP - 12 :, 90 : 90 + glyph.shape[1]][: glyph.shape[0]]
        assert (region > 0).sum() >= 0.97 * (glyph > 0.3).sum()
        assert read(field)[0] == f"4{label}3"


@pytest.mark.parametrize(
    ("ink", "message"),
    [(np.zeros((60, 200)), "blank"), (None, "not a number")],
    ids=["blank", "too-many-marks"],
)
def test_nothing_to_read_is_a_clear_error(ink, message):
    if ink is None:  # 70 short strokes in a row
        ink = np.zeros((60, 70 * 8), np.float32)
        for k in range(70):
            ink[15:45, k * 8 + 2 : k * 8 + 5] = 1.0
    with pytest.raises(images.ImageError, match=message):
        segment.find_field(scan(ink))


def _touches(left: np.ndarray, right: np.ndarray, gap: int) -> bool:
    canvas = paper((left, 0), (right, left.shape[1] + gap), width=left.shape[1] * 3)
    _, count = ndimage.label(canvas > 0.4 * canvas.max(), structure=np.ones((3, 3)))
    return count == 1


def test_runs_are_a_binary_opening_by_a_line_in_linear_time():
    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random(tuple(rng.integers(5, 60, 2))) < rng.uniform(0.3, 0.95)
        length = int(rng.integers(1, 20))
        for axis, line in ((1, np.ones((1, length))), (0, np.ones((length, 1)))):
            padded = np.pad(mask, length)
            opened = ndimage.binary_opening(padded, structure=line)[length:-length, length:-length]
            np.testing.assert_array_equal(segment._runs(mask, length, axis), opened)


def small(mnist, label: int) -> np.ndarray:
    """A test digit of that label at its own size (about 20 px tall), cropped to its ink."""
    ink = mnist.x_test[np.flatnonzero(mnist.y_test == label)[0]].astype(np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(1) > 0.3), np.flatnonzero(ink.max(0) > 0.3)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def cell(mnist, draw=None, labels=(2, 7), shape=(230, 140), row=70, gap=4) -> np.ndarray:
    """A register cell as scanned (230 x 140, as the real ones): a number written from
    column 45 at `row`, and what `draw` adds around it."""
    ink = np.zeros(shape, np.float32)
    left = 45
    for label in labels:
        glyph = small(mnist, label)
        region = ink[row : row + glyph.shape[0], left : left + glyph.shape[1]]
        np.maximum(region, glyph, out=region)
        left += glyph.shape[1] + gap
    if draw:
        canvas = Image.fromarray((ink * 255).astype(np.uint8))
        draw(ImageDraw.Draw(canvas))
        ink = np.asarray(canvas, np.float32) / 255
    return scan(ink)


# What sits in a register cell beside its number (as in shared/data's register cells).
CELL_MARKS = {
    # Its ruled edge, skewed by the scan: 5 columns over the cell's height.
    "skewed rule": lambda d: d.line([(120, 0), (125, 229)], fill=255, width=3),
    # A ruled edge printed as dashes, each heavier than a digit.
    "dashed rule": lambda d: [
        d.line([(20, y), (20, y + 40)], fill=255, width=3) for y in range(12, 200, 48)
    ],
    # The end of a rule running to the cell's foot, in the number's columns.
    "rule end below": lambda d: d.line([(52, 190), (52, 229)], fill=255, width=3),
    # The next entry's writing, cut by the cell's foot.
    "cut at the foot": lambda d: d.ellipse([(40, 200), (100, 260)], outline=255, width=3),
    # A bar far to the right on the number's line: what is left of a border.
    "far bar": lambda d: d.line([(118, 72), (118, 88)], fill=255, width=2),
    # A printed caption along the foot, with more ink than the number.
    "caption": lambda d: d.text(
        (4, 212), "Trykt for Kirkem", fill=255, font=ImageFont.load_default(),
        stroke_width=1, stroke_fill=255,
    ),
}  # fmt: skip


@pytest.mark.parametrize("mark", list(CELL_MARKS))
def test_in_a_cell_only_the_number_is_read(mnist, mark):
    field = segment.find_field(cell(mnist, CELL_MARKS[mark]))
    rows = np.flatnonzero(field.ink.any(1))
    assert rows[0] >= 66 and rows[-1] <= 96, (rows[0], rows[-1])  # the number's rows
    assert read(field)[0] == "27"


def test_a_wide_space_in_a_number_on_a_tall_crop_is_kept(mnist):
    """A cheque's amount cut with room above and below (under CELL_HEIGHTS text heights)
    keeps the digits after its separator's space; a cell's number is not this spaced."""
    gray = cell(mnist, labels=(2, 8, 0, 5), shape=(62, 200), row=21, gap=26)
    assert read(segment.find_field(gray))[0] == "2805"

"""The synthetic numbers: the string benchmark's stay as they are; the line models'
training numbers gain what real documents add, and their texts stay the digits."""

import hashlib
import itertools

import numpy as np
from scipy import ndimage

from mnistlab.read import documents

# sha256 of 12 numbers written with DIGITS below, seed 3, paper 0: the string benchmark's
# figures are comparable over time only while its images stay these.
BENCHMARK_DIGEST = "392cac88a9b6008af41a2bc9608f8a36ac6b08ff1f1c47dbdec63a5e54ae8d0b"


def digits():
    """Blob 'digits' (30, 28, 28) with labels 0-9: the mechanics need no real MNIST."""
    rng = np.random.default_rng(0)
    x = (rng.random((30, 28, 28)) ** 4 * 255).astype(np.uint8)
    x[:, :4] = x[:, -4:] = x[:, :, :4] = x[:, :, -4:] = 0
    return x, np.arange(30) % 10


def test_numbers_without_paper_are_the_string_benchmarks_own():
    digest = hashlib.sha256()
    for d in documents.number_strings(*digits(), 12, seed=3):
        digest.update(d.image.tobytes())
        digest.update(d.text.encode())
        digest.update(repr(d.spans).encode())
    assert digest.hexdigest() == BENCHMARK_DIGEST


def test_numbers_on_paper_keep_their_texts_and_a_span_per_digit():
    x, y = digits()
    plain = documents.number_strings(x, y, 40, seed=7)
    drawn = documents.number_strings(x, y, 40, seed=7, paper=1.0)
    # Drawn from the same digits, marks left out; a round amount's last ones made 0s.
    first, changed = plain[0].text, drawn[0].text
    assert len(changed) == len(first) and changed[:2] == first[:2]
    assert all(b == "0" for a, b in zip(first, changed, strict=True) if a != b)
    assert all(d.text.isdigit() and len(d.spans) == len(d.text) for d in drawn)
    assert all(right <= d.image.shape[1] for d in drawn for _, right in d.spans)
    assert drawn[0].image.shape != plain[0].image.shape


def test_separators_and_an_end_mark_are_glyphs_that_are_not_digits():
    x, _ = digits()
    rng = np.random.default_rng(1)
    glyphs = [(x[k].astype(np.float32) / 255, True) for k in range(7)]
    out = documents._as_on_documents(glyphs, [1] * 7, {"separators", "end mark"}, rng)
    # 1.234.567 and its end mark: two separators, one mark, the seven digits in order.
    assert [is_digit for _, is_digit in out] == [True, False, True, True, True, False] + [
        True
    ] * 3 + [False]
    ones = [g for g, is_digit in out if is_digit]
    assert sum(g.shape[1] > 28 for g in ones) >= 2  # continental 1s: a lead-in stroke


def test_some_nines_are_written_as_a_p():
    x, _ = digits()
    glyphs = [(x[9].astype(np.float32) / 255, True)] * 40
    out = documents._as_on_documents(glyphs, [9] * 40, set(), np.random.default_rng(0))
    mirrored = sum(np.array_equal(g, x[9][:, ::-1] / np.float32(255)) for g, _ in out)
    hooked = sum(g.shape[1] > 28 for g, _ in out)  # the foot's stroke widens the glyph
    assert 4 <= mirrored <= 20 and hooked >= 4 and mirrored + hooked < 40


def test_some_twos_start_with_a_closed_loop():
    # A 2 drawn as one open stroke (no hole); some come back with a loop at its start.
    two = documents._stroke((28, 28), [(6, 9), (14, 4), (21, 9), (8, 24), (22, 24)], 2.0)

    def holes(glyph: np.ndarray) -> int:
        """Paper regions that the ink closes in (not reaching the glyph's edge)."""
        regions, count = ndimage.label(glyph < documents.INK_LEVEL)
        edge = set(np.r_[regions[0], regions[-1], regions[:, 0], regions[:, -1]])
        return len(set(range(1, count + 1)) - edge)

    out = documents._as_on_documents([(two, True)] * 40, [2] * 40, set(), np.random.default_rng(0))
    looped = [g for g, _ in out if holes(g) > 0]
    assert holes(two) == 0 and 8 <= len(looped) <= 32
    # the loop is at the left: it widens the glyph to the left, and the 2 keeps its ink
    assert all(g.shape[0] == 28 and g.shape[1] > 28 for g in looped)
    assert all((g[:, -28:] >= two).all() for g in looped)


def test_zeros_in_a_run_are_written_as_a_chain_of_loops():
    x, y = digits()
    zeros = x[y == 0], y[y == 0]

    def overlaps(paper: float) -> int:
        """Of 30 numbers of zeros, how many have two neighbours' ink overlapping by more
        than a tenth of a digit's width (touching zeros only meet; slanted ones may)."""
        made = documents.number_strings(*zeros, 30, seed=2, paper=paper)
        return sum(
            any(a[1] - b[0] > 0.1 * (a[1] - a[0]) for a, b in itertools.pairwise(d.spans))
            for d in made
        )

    assert overlaps(0.0) == 0
    assert overlaps(1.0) >= 12  # 18 with the chains, 5 (slant alone) without


def test_some_writers_write_the_digits_after_a_separator_smaller():
    x, _ = digits()
    glyphs = [(x[k].astype(np.float32) / 255, True) for k in range(3)]
    glyphs.append((np.eye(28, dtype=np.float32) * 0.45, True))  # a faint thin stroke stays ink
    smaller = 0
    for seed in range(20):
        out = documents._as_on_documents(
            glyphs, [2] * 4, {"separators"}, np.random.default_rng(seed)
        )
        heights = [g.shape[0] for g, is_digit in out if is_digit]
        smaller += max(heights[1:]) < heights[0]  # 4,000: the last three
        assert all((g >= documents.INK_LEVEL).any() for g, _ in out)
    assert 2 <= smaller <= 12


def test_some_amounts_are_round():
    x, y = digits()
    ends = [
        sum(d.text.endswith("00") for d in documents.number_strings(x, y, 200, 4, paper=paper))
        for paper in (0.0, 1.0)
    ]
    assert ends[0] <= 8 and ends[1] >= 50  # uniform digits: 1 in 100; cheques: 1 in 6


def test_zeros_in_a_run_may_be_written_as_small_loops_joined_at_the_top():
    x, _ = digits()
    glyphs = [(x[k].astype(np.float32) / 255, True) for k in (5, 0, 0, 0, 0)]
    out = documents._as_on_documents(
        glyphs, [5, 0, 0, 0, 3], {"joined zeros"}, np.random.default_rng(0)
    )
    assert out[0][0] is glyphs[0][0] and out[4][0] is glyphs[4][0]  # the 5, a lone 0
    loops = [g for g, _ in out[1:4]]
    for loop in loops:
        regions, count = ndimage.label(loop < documents.INK_LEVEL)
        edge = set(np.r_[regions[0], regions[-1], regions[:, 0], regions[:, -1]])
        assert count - len(edge - {0}) == 1  # one hole: a closed loop
        ink = np.flatnonzero(loop[:, -1] >= documents.INK_LEVEL)
        assert ink.size and ink.max() < loop.shape[0] / 2  # the tie leaves at the top right
        assert loop.shape[0] < 28  # smaller than the digits
    assert len({g.shape for g in loops}) == 3  # each drawn anew

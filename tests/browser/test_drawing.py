"""`mnistlab serve` for real, and a digit drawn with the mouse in headless Chromium."""

import numpy as np
import pytest

# Test images: index 0 is a 7, index 2 a 1.
DRAWN = [(0, 7), (2, 1)]
SCALE = 10  # canvas pixels per MNIST pixel (280 / 28)


@pytest.fixture(scope="module")
def server(default_run, served_on_loopback):
    with served_on_loopback(default_run[0]) as url:
        yield url


def strokes(
    image: np.ndarray, scale: float = SCALE, left: float = 0.0
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The digit as horizontal mouse strokes: one per run of ink along each row."""
    lines = []
    for row, pixels in enumerate(image > 128):
        cols = np.flatnonzero(pixels)
        for run in np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1):
            if run.size:
                y = (row + 0.5) * scale
                start, end = left + (run[0] + 0.5) * scale, left + (run[-1] + 0.5) * scale
                lines.append(((start, y), (end, y)))
    return lines


@pytest.mark.parametrize(("index", "label"), DRAWN, ids=["seven", "one"])
def test_a_digit_drawn_on_the_page_is_read(browser, server, mnist, index, label):
    assert mnist.y_test[index] == label
    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.goto(server)
    pad = page.locator("#pad").bounding_box()
    for (x0, y0), (x1, y1) in strokes(mnist.x_test[index]):
        page.mouse.move(pad["x"] + x0, pad["y"] + y0)
        page.mouse.down()
        page.mouse.move(pad["x"] + x1 + 1, pad["y"] + y1, steps=2)
        page.mouse.up()
    page.click("#predict")
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10", timeout=10_000)
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#answer") == str(label)
    widths = page.evaluate("[...document.querySelectorAll('#bars .bar')].map(b => b.offsetWidth)")
    assert int(np.argmax(widths)) == label  # the answer's bar is the longest
    page.click("#clear")
    assert page.inner_text("#answer") == ""
    page.close()


def test_a_number_written_on_the_number_pad_is_read(browser, server, mnist):
    four, two = (int(np.flatnonzero(mnist.y_test == d)[0]) for d in (4, 2))
    page = browser.new_page(viewport={"width": 900, "height": 900})
    page.goto(server)
    pad = page.locator("#numpad").bounding_box()
    scale = pad["height"] / 28 * 0.9
    for index, left in ((four, 0.15 * pad["width"]), (two, 0.45 * pad["width"])):
        for (x0, y0), (x1, y1) in strokes(mnist.x_test[index], scale, left):
            page.mouse.move(pad["x"] + x0, pad["y"] + y0)
            page.mouse.down()
            page.mouse.move(pad["x"] + x1 + 1, pad["y"] + y1, steps=2)
            page.mouse.up()
    page.click("#read")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("document.querySelectorAll('#digits .digit').length === 2")
    assert page.inner_text("#reading") == "42"
    assert "confidence" in page.inner_text("#reading-confidence")
    page.click("#clear-number")
    assert page.inner_text("#reading") == ""
    page.close()

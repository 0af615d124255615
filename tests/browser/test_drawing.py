"""`mnistlab serve` for real, and a digit drawn with the mouse in headless Chromium."""

import numpy as np
import pytest
from playwright.sync_api import expect

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


DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}


def draw(page, image, selector="#pad"):
    """Draw the digit on the pad with the mouse, at the pad's size on screen."""
    pad = page.locator(selector).bounding_box()
    scale = (pad["width"] - 4) / 28  # 2 px of border each side
    for (x0, y0), (x1, y1) in strokes(image, scale):
        page.mouse.move(pad["x"] + 2 + x0, pad["y"] + 2 + y0)
        page.mouse.down()
        page.mouse.move(pad["x"] + 2 + x1 + 1, pad["y"] + 2 + y1, steps=2)
        page.mouse.up()


def predicted(page) -> str:
    page.click("#predict")
    # Locators, not wait_for_function: its string is evaluated, which the page's CSP forbids.
    expect(page.locator("#bars .bar")).to_have_count(10, timeout=10_000)
    page.wait_for_load_state("networkidle")
    return page.inner_text("#answer")


def box(page, selector):
    return page.locator(selector).bounding_box()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize(("index", "label"), DRAWN, ids=["seven", "one"])
def test_a_digit_drawn_on_the_page_is_read(browser, server, mnist, index, label, viewport):
    assert mnist.y_test[index] == label
    page = browser.new_page(viewport=viewport)
    page.goto(server)
    draw(page, mnist.x_test[index])
    assert predicted(page) == str(label)
    widths = page.evaluate("[...document.querySelectorAll('#bars .bar')].map(b => b.offsetWidth)")
    assert int(np.argmax(widths)) == label  # the answer's bar is the longest
    assert f"reads {label}" in page.inner_text("#answer-live")  # what a screen reader says
    # The 28x28 image the model saw is drawn: white ink on black, as MNIST.
    ink = page.evaluate(
        "Array.from(document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0 && v > 128).length"
    )
    assert 20 < ink < 400
    page.click("#clear")
    assert page.inner_text("#answer") == ""
    page.close()


def test_on_a_desktop_pad_and_answer_sit_side_by_side_with_every_bar_in_the_window(
    browser, server, mnist
):
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server)
    draw(page, mnist.x_test[0])
    predicted(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    pad, answer = box(page, "#pad"), box(page, "#answer")
    assert answer["x"] >= pad["x"] + pad["width"] and answer["y"] < pad["y"] + pad["height"]
    for track in page.locator("#bars .track").all():  # no scrolling needed to see them
        b = track.bounding_box()
        assert b["width"] > 100 and b["y"] + b["height"] <= DESKTOP["height"]
    assert box(page, "#seen")["y"] + 84 <= DESKTOP["height"]
    page.close()


def test_on_a_phone_the_page_stacks_with_margins_and_never_scrolls_sideways(browser, server, mnist):
    page = browser.new_page(viewport=PHONE)
    page.goto(server)
    draw(page, mnist.x_test[0])
    predicted(page)
    width = PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    pad, answer = box(page, "#pad"), box(page, "#answer")
    assert answer["y"] >= pad["y"] + pad["height"]  # stacked
    for selector in ("#pad", "#numpad", "#bars", "#predict", "#read"):
        b = box(page, selector)
        assert b["x"] >= 12 and b["x"] + b["width"] <= width - 12, selector  # margins
    page.locator("#bars").scroll_into_view_if_needed()
    for track in page.locator("#bars .track").all():  # all ten on screen at once
        b = track.bounding_box()
        assert b["width"] > 100 and b["y"] >= 0 and b["y"] + b["height"] <= PHONE["height"]
    page.close()


def test_a_digit_drawn_with_a_finger_is_read(browser, server, mnist):
    page = browser.new_page(viewport=PHONE, has_touch=True)
    page.goto(server)
    pad = box(page, "#pad")
    scale = (pad["width"] - 4) / 28
    points = [
        [[pad["x"] + 2 + x, pad["y"] + 2 + y] for x, y in np.linspace(start, end, 4).tolist()]
        for start, end in strokes(mnist.x_test[2], scale)
    ]
    page.evaluate(
        """strokes => {
            const pad = document.getElementById("pad");
            const fire = (type, [x, y]) => pad.dispatchEvent(new PointerEvent(type, {
                pointerType: "touch", pointerId: 7, isPrimary: true, bubbles: true,
                clientX: x, clientY: y }));
            for (const s of strokes) {
                fire("pointerdown", s[0]);
                s.slice(1).forEach(p => fire("pointermove", p));
                fire("pointerup", s[s.length - 1]);
            }
        }""",
        points,
    )
    assert predicted(page) == "1"
    page.close()


def test_undo_and_the_keyboard(browser, server, mnist):
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server)
    draw(page, mnist.x_test[0])
    drawn = page.evaluate("document.getElementById('pad').toDataURL()")
    assert predicted(page) == "7"
    pad = box(page, "#pad")
    page.mouse.move(pad["x"] + 20, pad["y"] + 260)
    page.mouse.down()
    page.mouse.move(pad["x"] + 260, pad["y"] + 260, steps=3)
    page.mouse.up()
    assert page.evaluate("document.getElementById('pad').toDataURL()") != drawn
    page.keyboard.press("Control+z")  # the extra stroke goes, the digit stays
    assert page.evaluate("document.getElementById('pad').toDataURL()") == drawn
    page.wait_for_load_state("networkidle")
    page.focus("#pad")
    page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#answer") == "7"
    page.keyboard.press("Escape")
    assert page.inner_text("#answer") == ""
    assert page.evaluate("document.getElementById('pad').toDataURL()") != drawn
    page.close()


def test_a_server_out_of_reach_is_said_on_the_page(browser, server, mnist):
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server)
    page.route("**/predict", lambda route: route.abort())
    draw(page, mnist.x_test[0])
    page.click("#predict")
    expect(page.locator("#error")).not_to_have_text("")
    assert "Cannot reach the server" in page.inner_text("#error")
    assert page.inner_text("#answer") == "?"
    page.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_number_written_on_the_number_pad_is_read(browser, server, mnist, viewport):
    four, two = (int(np.flatnonzero(mnist.y_test == d)[0]) for d in (4, 2))
    page = browser.new_page(viewport=viewport)
    page.goto(server)
    page.locator("#numpad").scroll_into_view_if_needed()
    pad = page.locator("#numpad").bounding_box()
    # Square pixels whatever the pad's shape on screen: the digits are not squashed.
    size = page.evaluate("[numpad.width, numpad.height]")
    assert size[0] / size[1] == pytest.approx((pad["width"] - 4) / (pad["height"] - 4), rel=0.01)
    scale = pad["height"] / 28 * 0.9
    for index, left in ((four, 0.15 * pad["width"]), (two, 0.45 * pad["width"])):
        for (x0, y0), (x1, y1) in strokes(mnist.x_test[index], scale, left):
            page.mouse.move(pad["x"] + x0, pad["y"] + y0)
            page.mouse.down()
            page.mouse.move(pad["x"] + x1 + 1, pad["y"] + y1, steps=2)
            page.mouse.up()
    page.click("#read")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#digits .digit")).to_have_count(2)
    assert page.inner_text("#reading") == "42"
    assert "confidence" in page.inner_text("#reading-confidence")
    page.click("#clear-number")
    assert page.inner_text("#reading") == ""
    page.close()

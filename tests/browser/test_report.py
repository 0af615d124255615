"""The HTML report in a real browser: headless Chromium, driven by Playwright."""

import os
import shutil
from pathlib import Path

from mnistlab import runs
from mnistlab.data import load_digits_set
from mnistlab.report.evaluation import evaluate_run


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, requests


def test_report_renders_with_its_figures_and_the_right_accuracy(browser, default_run, tmp_path):
    # Its own copy, evaluated here: whatever other tests did or did not run before.
    run_dir = tmp_path / "run"
    shutil.copytree(default_run[0], run_dir)
    evaluate_run(run_dir, load_digits_set())
    evaluation = runs.read_json(run_dir / runs.EVALUATION)
    page, requests = open_page(browser, run_dir / runs.REPORT)

    widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(widths) == 5 + 10  # five figures, ten mistakes
    assert all(w > 0 for w in widths)
    assert page.inner_text("#accuracy") == f"{evaluation['metrics']['accuracy']:.4f}"
    assert all(url.startswith(("file:", "data:")) for url in requests)  # self-contained
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000  # a real rendering, figures included
    if os.environ.get("MNISTLAB_SCREENSHOTS"):
        shutil.copy(shot, os.environ["MNISTLAB_SCREENSHOTS"])


def test_compare_page_renders(browser, cli, tiny_runs, tmp_path):
    result = cli("compare", *tiny_runs, "--out", tmp_path / "compare.html")
    assert result.returncode == 0, result.stderr
    page, _ = open_page(browser, tmp_path / "compare.html")
    widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert widths == [1200, 1000]  # overlaid curves; two confusion matrices side by side
    assert page.locator("table tr").count() == 3


def test_report_fits_a_phone_without_sideways_scrolling(browser, default_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(default_run[0], run_dir)
    evaluate_run(run_dir, load_digits_set(), strings=20)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto((run_dir / runs.REPORT).as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Every figure is shown whole, scaled to the screen.
    boxes = [i.bounding_box() for i in page.locator("img.figure").all()]
    assert len(boxes) == 6 and all(b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes)

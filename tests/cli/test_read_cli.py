"""`mnistlab read` as a user runs it: real numbers written with MNIST test digits."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from mnistlab.read import MIN_CONFIDENCE, documents
from mnistlab.report.evaluation import STRING_SEED


@pytest.fixture(scope="module")
def folder(mnist, tmp_path_factory):
    """Numbers (no touching pair), a one-digit image, a blank page and a non-image."""
    root = tmp_path_factory.mktemp("forms")
    made = documents.number_strings(mnist.x_test, mnist.y_test, 40, seed=11, length=5)
    numbers = [d for d in made if not d.touching][:6]
    for i, d in enumerate(numbers):
        Image.fromarray(d.image).save(root / f"form-{i}.png")
    one = np.flatnonzero(mnist.y_test == 7)[0]
    Image.fromarray(255 - mnist.x_test[one]).resize((84, 84)).save(root / "single.png")
    Image.new("L", (120, 60), 250).save(root / "blank.png")
    (root / "notes.png").write_text("not an image")
    return root, [d.text for d in numbers]


def test_read_prints_a_line_per_file_and_a_summary(cli, default_run, folder):
    root, texts = folder
    result = cli("read", default_run[0], root, "--min-confidence", "0")
    assert result.returncode == 1  # two files could not be read
    lines = result.stdout.strip().splitlines()
    by_file = {line.split()[0]: line for line in lines[:-1]}
    assert set(by_file) == {str(p) for p in sorted(root.iterdir())}
    assert "no digits found" in by_file[str(root / "blank.png")]
    assert "not an image" in by_file[str(root / "notes.png")]
    assert by_file[str(root / "single.png")].split()[1] == "7"
    right = sum(by_file[str(root / f"form-{i}.png")].split()[1] == t for i, t in enumerate(texts))
    assert right >= 4
    assert re.fullmatch(r"9 files: 7 read, 0 unsure, 2 failed; [\d.]+ files/s", lines[-1])


def test_read_is_unsure_by_default_below_the_calibrated_threshold(cli, default_run, folder):
    root, _ = folder
    result = cli("read", default_run[0], root, "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    readings = [r for r in records if "text" in r]
    assert readings and {r["unsure"] for r in readings} == {True, False}
    for r in readings:
        assert r["unsure"] == (r["confidence"] < MIN_CONFIDENCE)


def test_read_json_gives_digits_boxes_and_confidence(cli, default_run, folder):
    root, _ = folder
    result = cli("read", default_run[0], root / "form-0.png", root / "single.png", "--json",
                 "--min-confidence", "0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(root / "form-0.png"), str(root / "single.png")]
    for r in records:
        assert r["text"] == "".join(str(d["digit"]) for d in r["digits"])
        # At most the product of the digits' probabilities (each rounded to 6 places).
        product = np.prod([d["probability"] for d in r["digits"]])
        assert 0 < r["confidence"] <= product * (1 + 1e-4) + 1e-6
        assert all(len(d["box"]) == 4 for d in r["digits"])
    assert records[1]["text"] == "7"
    assert "2 files: 2 read, 0 unsure, 0 failed" in result.stderr


def test_a_reading_forced_to_a_wrong_length_is_not_confident(cli, default_run, folder):
    """Each digit of a forced reading can look sure (measured: 883348 for 88348 had a
    digit product of 1.0); the line's probability of the whole string says otherwise."""
    root, texts = folder
    forms = sorted(root.glob("form-*.png"))
    for length, want in [(None, 0.5), (6, 0.05), (4, 0.05)]:
        extra = ["--length", str(length)] if length else []
        result = cli("read", default_run[0], *forms, "--json", *extra)
        records = [json.loads(line) for line in result.stdout.splitlines()]
        if length:
            assert all(len(r["text"]) == length for r in records)
            assert max(r["confidence"] for r in records) < want
        else:
            right = [r for r, t in zip(records, texts, strict=True) if r["text"] == t]
            assert len(right) >= 4 and min(r["confidence"] for r in right) > want


def test_read_length_and_min_confidence(cli, default_run, folder):
    root, _ = folder
    result = cli("read", default_run[0], root / "form-1.png", "--json", "--length", "6")
    assert len(json.loads(result.stdout)["text"]) == 6
    forms = sorted(root.glob("form-*.png"))
    records = [
        json.loads(line)
        for line in cli("read", default_run[0], *forms, "--json").stdout.splitlines()
    ]
    least = min(records, key=lambda r: r["confidence"])  # a reading can be sure to 1.0
    assert least["confidence"] < 1
    between = (least["confidence"] + 1) / 2
    unsure = cli("read", default_run[0], least["file"], "--min-confidence", between)
    assert unsure.stdout.split()[1] == "unsure"
    assert "0 read, 1 unsure" in unsure.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--length", "0"], "--length must be in 1..64"),
        (["--min-confidence", "2"], "--min-confidence must be in [0, 1]"),
    ],
)
def test_read_refuses_bad_options(cli, default_run, folder, args, message):
    result = cli("read", default_run[0], folder[0] / "form-0.png", *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_string_benchmark_in_evaluate(cli, default_run):
    """The CI-sized string benchmark, with bars the reference MLP meets (README)."""
    result = cli("evaluate", default_run[0], "--strings", "60", "--string-length", "5")
    assert result.returncode == 0, result.stderr
    record = json.loads((default_run[0] / "evaluation.json").read_text())
    strings = record["strings"]
    assert strings["n"] == 60 and strings["seed"] == STRING_SEED and strings["length"] == 5
    # Measured on 500 such strings: 0.926, none touching 0.914, digits 0.985 (README).
    assert strings["string_accuracy"] >= 0.8
    assert strings["not_touching"]["accuracy"] >= 0.8
    assert strings["digit_accuracy"] >= 0.95
    assert strings["risk_coverage"][-1]["coverage"] == 1.0
    assert "strings:" in result.stdout
    page = (default_run[0] / "report.html").read_text()
    assert "Reading numbers" in page and "risk_coverage" in page

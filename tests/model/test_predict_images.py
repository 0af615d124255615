"""Real test digits turned into the kind of images users send; each must still be read."""

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mnistlab.images import CENTRE, load_digit, to_mnist
from mnistlab.predictor import Predictor
from mnistlab.read import documents

N = 100
BAR = 97  # of 100 per transformation, the same digit as for the original test image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def inverted(x):  # dark ink on white paper
    return encode(Image.fromarray(255 - x))


def large_off_centre(x):  # 200x200, digit scaled up and pushed to a corner
    canvas = Image.new("L", (200, 200), 0)
    canvas.paste(Image.fromarray(x).resize((110, 110), Image.Resampling.BILINEAR), (15, 70))
    return encode(canvas)


def rgba_transparent(x):  # black ink whose alpha is the stroke, transparent elsewhere
    black = Image.new("L", (28, 28), 0)
    return encode(Image.merge("RGBA", [black, black, black, Image.fromarray(x)]))


def jpeg(x):  # a lossy photo format, at a size a phone would not go below
    return encode(Image.fromarray(255 - x).resize((112, 112)).convert("RGB"), "JPEG", quality=60)


def gradient_paper(x):  # dark ink on paper lit unevenly: 255 on the right, 170 on the left
    big = np.asarray(Image.fromarray(x).resize((112, 112), Image.Resampling.BILINEAR), float)
    paper = np.linspace(170, 255, 112)[None, :].repeat(112, axis=0)
    photo = paper * (1 - big / 255.0)
    return encode(Image.fromarray(photo.clip(0, 255).astype(np.uint8)))


TRANSFORMS = [inverted, large_off_centre, rgba_transparent, jpeg, gradient_paper]


@pytest.fixture(scope="module")
def predictor(default_run):
    return Predictor.from_run(default_run[0])


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.__name__)
def test_transformed_digits_are_read_like_the_originals(predictor, mnist, transform):
    x = mnist.x_test[:N]
    original = predictor.predict_proba(x).argmax(1)
    seen = np.array([load_digit(transform(image)) for image in x])
    read = predictor.predict_proba(seen).argmax(1)
    assert int((read == original).sum()) >= BAR


@pytest.mark.parametrize("size", [20, 50, 90, 200])
def test_redrawn_digits_have_mnists_centre_of_mass(mnist, size):
    """MNIST's digits have their centre of mass at (14.0, 14.0), not the middle (13.5)."""
    x = mnist.x_test[:300]
    truth = np.array([ndimage.center_of_mass(image) for image in x]).mean(0)
    assert np.abs(truth - CENTRE).max() < 0.02
    redrawn = [
        load_digit(
            encode(Image.fromarray(255 - image).resize((size, size), Image.Resampling.BICUBIC))
        )
        for image in x
    ]
    centres = np.array([ndimage.center_of_mass(d) for d in redrawn])
    assert np.abs(centres.mean(0) - truth).max() < 0.1
    assert centres.std(0).max() < 0.1  # placed to a fraction of a pixel, not to a pixel


def test_low_resolution_scans_are_read_almost_as_well(predictor, mnist):
    """Test digits scanned at 16x16, binarised, thinner or thicker, upscaled 3-6x onto
    uneven paper. The bar is what the reference MLP meets (README: the issue asks 3)."""
    x, y = mnist.x_test[:1000], mnist.y_test[:1000]
    rng = np.random.default_rng(0)
    scans = np.stack([to_mnist(documents.low_resolution_scan(i, rng).astype(float)) for i in x])
    original = (predictor.predict_proba(x).argmax(1) == y).mean()
    scanned = (predictor.predict_proba(scans).argmax(1) == y).mean()
    assert original - scanned <= 0.055


def test_predict_cli_on_files_and_folders(cli, default_run, mnist, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(3):
        (folder / f"digit-{i}.png").write_bytes(inverted(mnist.x_test[i]))
    (folder / "empty.png").write_bytes(encode(Image.new("L", (60, 60), 255)))
    (folder / "notes.txt").write_text("not a digit")
    (folder / "more").mkdir()
    result = cli("predict", default_run[0], folder, "--json")
    assert result.returncode == 1  # one file held no digit
    # What is not an image is said, not silently left out; the count closes on stderr.
    *skipped, summary = result.stderr.splitlines()
    assert skipped == [
        f"skipped {folder / 'more'}: a folder",
        f"skipped {folder / 'notes.txt'}: not an image file",
    ]
    assert re.fullmatch(
        r"4 files: 3 predicted, 0 unsure, 1 failed, 2 skipped; [\d.]+ files/s", summary
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {line["file"].rsplit("/", 1)[1]: line for line in lines}
    assert by_name["empty.png"]["error"] == "no digit found (the image is blank)"
    for i in range(3):
        answer = by_name[f"digit-{i}.png"]
        assert answer["digit"] == mnist.y_test[i]
        assert len(answer["top"]) == 3 and answer["top"][0]["digit"] == answer["digit"]

    text = cli("predict", default_run[0], folder / "digit-0.png", "--top-k", 2)
    assert text.returncode == 0
    assert text.stdout.startswith(f"{folder / 'digit-0.png'}: {mnist.y_test[0]} (p=")
    assert re.search(r"\n1 file: 1 predicted, 0 unsure, 0 failed; [\d.]+ files/s\n$", text.stdout)
    # A 7 and a 1 drawn over each other: the model cannot be sure.
    blend = tmp_path / "seven-and-one.png"
    blend.write_bytes(inverted(np.maximum(mnist.x_test[0], mnist.x_test[2])))
    (answer,) = map(
        json.loads, cli("predict", default_run[0], blend, "--json").stdout.split("\n")[:1]
    )
    assert answer["probability"] < 0.999
    unsure = cli("predict", default_run[0], blend, "--min-confidence", 0.999)
    assert unsure.returncode == 0 and ": unsure (p=" in unsure.stdout
    bad = cli("predict", default_run[0], folder, "--min-confidence", 2)
    assert bad.returncode == 2 and "--min-confidence must be in [0, 1]" in bad.stderr
    empty = cli("predict", default_run[0], folder / "more")
    assert empty.returncode == 2
    assert empty.stderr == "mnistlab: error: no image files found in the folders given\n"

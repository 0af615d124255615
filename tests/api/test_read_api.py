"""POST /read on real numbers written with MNIST test digits, and its refusals."""

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab.config import ServeConfig
from mnistlab.predictor import Predictor
from mnistlab.read import documents
from mnistlab.read.reader import Reader
from mnistlab.serve import create_app

BODY_LIMIT = 2_000_000
CONCURRENT = 16


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(default_run):
    app = create_app(ServeConfig(run=str(default_run[0]), max_body_bytes=BODY_LIMIT))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def written(mnist):
    """Five-digit numbers without a touching pair."""
    made = documents.number_strings(mnist.x_test, mnist.y_test, 60, seed=5, length=5)
    return [d for d in made if not d.touching][:12]


def test_read_returns_the_number_with_boxes(client, written, default_run):
    reader = Reader.from_run(default_run[0])  # the served reader: the same threshold
    right = 0
    for document in written:
        response = client.post("/read", files={"file": ("n.png", png(document.image))})
        assert response.status_code == 200, response.text
        body = response.json()
        # The server reads exactly as the library does.
        assert body == reader.read(document.image.astype(np.float32)).as_record()
        right += body["text"] == document.text
        height, width = document.image.shape
        for digit in body["digits"]:
            x, y, w, h = digit["box"]
            assert 0 <= x < x + w <= width and 0 <= y < y + h <= height
        xs = [d["box"][0] for d in body["digits"]]
        assert xs == sorted(xs)  # left to right
    assert right >= 0.5 * len(written)  # the reference MLP: 7 of 12 (README)


def test_the_python_reader_reads_files_and_bytes_as_the_server(
    client, written, default_run, tmp_path
):
    path = tmp_path / "number.png"
    path.write_bytes(png(written[1].image))
    reader = Reader.from_run(default_run[0])
    served = client.post("/read", files={"file": ("n.png", path.read_bytes())}).json()
    assert reader.read(path).as_record() == served == reader.read(path.read_bytes()).as_record()


def test_read_takes_base64_json_and_a_length(client, written):
    document = written[0]
    data = "data:image/png;base64," + base64.b64encode(png(document.image)).decode()
    body = client.post("/read", json={"image": data}, params={"length": 7}).json()
    assert len(body["text"]) == 7 == len(body["digits"])
    sure = client.post("/read", json={"image": data}, params={"min_confidence": 1.0}).json()
    assert sure["unsure"] is True


@pytest.mark.parametrize(
    ("make", "status", "detail"),
    [
        (lambda: png(np.full((60, 200), 255, np.uint8)), 422, "blank"),
        (lambda: png(_dashes(70)), 422, "not a number"),
        (lambda: b"not an image", 400, "not an image"),
        (
            lambda: png(np.random.default_rng(0).integers(0, 256, (1600, 1600), np.uint8)),
            413,
            "limit",
        ),
    ],
    ids=["blank", "over-64-digits", "not-an-image", "over-the-size-limit"],
)
def test_bad_input_is_a_4xx_with_a_detail(client, make, status, detail):
    response = client.post("/read", files={"file": ("x.png", make())})
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_only_specks_and_lines_are_no_digits(client):
    gray = np.full((80, 300), 240, np.uint8)
    gray[60:62, 10:290] = 20  # a ruled line
    gray[20, 40] = gray[30, 200] = 30  # specks
    response = client.post("/read", files={"file": ("x.png", png(gray))})
    assert response.status_code in (400, 422)
    assert "no digits" in response.json()["detail"]


def test_concurrent_reads_on_every_model_kind(conv_runs, tiny_runs, mnist):
    made = documents.number_strings(mnist.x_test, mnist.y_test, 8, seed=9)
    bodies = [png(d.image) for d in made]
    for run in (conv_runs["cnn"], conv_runs["ensemble"], tiny_runs[0]):
        reader = Reader(Predictor.from_run(run))
        expected = [reader.read(d.image.astype(np.float32)).as_record() for d in made]
        with TestClient(create_app(ServeConfig(run=str(run)))) as client:

            def one(i):
                return client.post("/read", files={"file": ("n.png", bodies[i % len(bodies)])})

            with ThreadPoolExecutor(CONCURRENT) as pool:
                answers = list(pool.map(one, range(2 * CONCURRENT)))
        assert [a.status_code for a in answers] == [200] * (2 * CONCURRENT)
        for i, answer in enumerate(answers):
            got, want = answer.json(), expected[i % len(bodies)]
            assert got["text"] == want["text"]
            assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-4)


def _dashes(count: int) -> np.ndarray:
    gray = np.full((60, count * 8 + 8), 250, np.uint8)
    for k in range(count):
        gray[15:45, k * 8 + 4 : k * 8 + 7] = 10
    return gray


def test_boxes_of_a_large_upload_are_in_its_pixels(client, written):
    """A 2240x448 upload is read on a 1,120-px copy: boxes came back in the copy's pixels
    ([31, 36, 87, 109] where [92, 108, 260, 328] was right)."""
    image = Image.fromarray(written[2].image)
    scale = 2240 / image.width
    large = np.asarray(image.resize((2240, round(image.height * scale)), Image.Resampling.LANCZOS))
    small_body = client.post("/read", files={"file": ("s.png", png(written[2].image))}).json()
    large_body = client.post("/read", files={"file": ("l.png", png(large))}).json()
    assert large_body["text"] == small_body["text"]
    height, width = large.shape
    for s, g in zip(small_body["digits"], large_body["digits"], strict=True):
        np.testing.assert_allclose(g["box"], np.array(s["box"]) * scale, atol=2.5 * scale)
        x, y, w, h = g["box"]
        assert 0 <= x < x + w <= width and 0 <= y < y + h <= height

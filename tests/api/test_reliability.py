"""The server under hostile use: concurrency on every kind of model, huge and odd images,
bodies FastAPI would echo, and slow clients (a real uvicorn on loopback)."""

import io
import json
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from mnistlab.config import ServeConfig
from mnistlab.predictor import Predictor
from mnistlab.serve import create_app
from mnistlab.serve.schemas import MAX_BATCH

CONCURRENT = 32


@pytest.fixture(scope="module", params=["cnn", "ensemble", "dense"])
def served(request, conv_runs, tiny_runs):
    """(app client, predictor of the same run) for a conv model, an ensemble and an MLP."""
    run = tiny_runs[0] if request.param == "dense" else conv_runs[request.param]
    with TestClient(create_app(ServeConfig(run=str(run)))) as client:
        yield client, Predictor.from_run(run)


def png(array: np.ndarray, mode: str = "L", format: str = "PNG") -> bytes:
    """uint8 grey levels saved in `mode`; 16-bit modes span the full 16-bit range."""
    buffer = io.BytesIO()
    if mode == "I;16":
        image = Image.fromarray(array.astype(np.uint16) * 257)
    else:
        image = Image.fromarray(array).convert(mode)
    image.save(buffer, format=format)
    return buffer.getvalue()


def test_concurrent_requests_all_succeed_and_match_the_model(served, mnist):
    client, predictor = served
    x = mnist.x_test[:100]
    expected = predictor.predict_proba(x)

    def one(i):
        return client.post("/predict", json={"pixels": (x[i] / 255).tolist()})

    def batch(i):  # over the 64 images of the Dense NumPy path: the Keras path
        instances = (x[: 65 + i] / 255).reshape(65 + i, -1).tolist()
        return client.post("/v1/models/mnist:predict", json={"instances": instances})

    def infer(i):  # the Open Inference Protocol, one digit each, as UINT8
        tensor = {"name": "images", "datatype": "UINT8", "shape": [1, 28, 28, 1],
                  "data": x[i].reshape(-1).tolist()}  # fmt: skip
        return client.post("/v2/models/mnist/infer", json={"inputs": [tensor]})

    with ThreadPoolExecutor(CONCURRENT) as pool:
        singles = list(pool.map(one, range(CONCURRENT)))
        batches = list(pool.map(batch, range(4)))
        inferred = list(pool.map(infer, range(CONCURRENT)))
    assert [r.status_code for r in singles + batches + inferred] == [200] * (2 * CONCURRENT + 4)
    got = np.array([r.json()["outputs"][0]["data"] for r in inferred])
    np.testing.assert_allclose(got, expected[:CONCURRENT], atol=1e-5)
    got = np.array([r.json()["probabilities"] for r in singles])
    np.testing.assert_allclose(got, expected[:CONCURRENT], atol=1e-5)
    for i, r in enumerate(batches):
        np.testing.assert_allclose(r.json()["predictions"], expected[: 65 + i], atol=1e-5)
    # And the server still works, one request at a time.
    again = client.post("/predict", json={"pixels": (x[0] / 255).tolist()})
    assert again.status_code == 200
    assert again.json()["digit"] == int(expected[0].argmax())


def test_a_huge_mostly_blank_image_is_read_quickly(served):
    client, _ = served
    image = Image.new("L", (5000, 5000), 255)
    ImageDraw.Draw(image).line([(2000, 1200), (2600, 3800)], fill=0, width=160)  # a "1"
    data = png(np.asarray(image))
    assert len(data) < 200_000
    response = client.post("/predict", files={"file": ("page.png", data, "image/png")})
    assert response.status_code == 200, response.text
    assert np.array(response.json()["preprocessed"]).shape == (28, 28)


def test_over_the_pixel_limit_is_a_400(served):
    client, _ = served
    data = png(np.full((6300, 6300), 255, np.uint8))  # the 76 KB, 40-megapixel PNG
    response = client.post("/predict", files={"file": ("big.png", data, "image/png")})
    assert response.status_code == 400
    assert "pixel limit" in response.json()["detail"]


@pytest.mark.parametrize("mode", ["LAB", "CMYK", "YCbCr", "I;16", "RGBA", "P", "1"])
def test_every_image_mode_reads_like_grayscale(served, mnist, mode):
    client, _ = served
    paper = 255 - mnist.x_test[0]  # dark ink on white
    gray = client.post("/predict", files={"file": ("d.png", png(paper), "image/png")}).json()
    data = png(paper, mode, "TIFF" if mode in ("LAB", "CMYK", "YCbCr") else "PNG")
    response = client.post("/predict", files={"file": ("d.tif", data, "image/tiff")})
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == gray["digit"]


@pytest.mark.parametrize(
    ("body", "error"),
    [('{"instances": [[NaN' + ",0" * 783 + "]]}", "pixels must be numbers in [0, 1]"),
     ('{"instances": [[Infinity' + ",0" * 783 + "]]}", "pixels must be numbers in [0, 1]"),
     (json.dumps({"instances": [[0.5] * 784] * (MAX_BATCH + 1)}), "1 to 256 digits a request")],
    ids=["nan", "infinity", "257-images"],
)  # fmt: skip
def test_invalid_tf_serving_bodies_are_422_without_the_input(served, body, error):
    client, _ = served
    response = client.post(
        "/v1/models/mnist:predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {"error": f"instances: {error}"}  # the reason, not the numbers


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [({"content": json.dumps({"pixels": [[0] * 28] * 28}),
       "headers": {"content-type": "application/jsonfoo"}}, 415, "multipart"),
     ({"json": {"pixels": [["0.5"] * 28] * 28}}, 422, "valid number"),
     ({"json": {"pixels": [[True] * 28] * 28}}, 422, "valid number"),
     ({"files": [("file", ("a.png", b"x", "image/png")), ("file", ("b.png", b"y", "image/png"))]},
      422, "exactly one 'file'")],
    ids=["jsonfoo", "strings", "booleans", "two-files"],
)  # fmt: skip
def test_loose_input_is_refused(served, kwargs, status, detail):
    client, _ = served
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert detail in str(response.json()["detail"])


def test_integers_are_still_pixels(served):
    client, _ = served
    response = client.post("/predict", json={"pixels": [[0] * 28] * 27 + [[1] * 28]})
    assert response.status_code == 200


def test_metadata_shows_names_not_server_paths(served):
    client, _ = served
    meta = client.get("/metadata").json()
    assert "/" not in meta["run"] and "/" not in meta["model_file"]
    assert meta["model_file"] == "final_model.keras"


def test_docs_need_no_internet(served):
    client, _ = served
    page = client.get("/docs").text
    assert "cdn" not in page.lower()
    scripts = [part.split('"')[0] for part in page.split('src="')[1:]]
    assert scripts
    for url in scripts:
        assert url.startswith("/") and client.get(url).status_code == 200


def test_slow_clients_are_cut_off_and_others_served(tiny_runs, served_on_loopback):
    with served_on_loopback(tiny_runs[0], "--request-timeout", 1) as url:
        port = int(url.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port))
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        # Both are closed by the server after its 1 s deadline: recv sees the end of the
        # stream (b""), where before it waited forever (socket.timeout here, after 10 s).
        for sock in (silent, partial):
            sock.settimeout(10)
            assert sock.recv(1024) == b""
            sock.close()
        with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
            assert json.load(answer) == {"status": "ok"}

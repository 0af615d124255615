"""The HTTP API with FastAPI's TestClient, on a real trained run and real test digits."""

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab import runs
from mnistlab.config import ServeConfig
from mnistlab.predictor import Predictor
from mnistlab.serve import create_app, get_predictor

BODY_LIMIT = 1_000_000
ZERO_ROW = "[" + ",".join(["0"] * 28) + "]"
NAN_PIXELS = '{"pixels": [[NaN' + ",0" * 27 + "]," + ",".join([ZERO_ROW] * 27) + "]}"


@pytest.fixture(scope="module")
def app(tiny_runs):
    """The app over a real trained run, its lifespan run (the model is loaded)."""
    app = create_app(ServeConfig(run=str(tiny_runs[0]), max_body_bytes=BODY_LIMIT))
    with TestClient(app):
        yield app


@pytest.fixture
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:8], mnist.y_test[:8]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_and_metadata(client, tiny_runs):
    assert client.get("/health").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    metrics = runs.read_json(tiny_runs[0] / runs.METRICS)
    assert meta["preset"] == "deep-mlp"
    assert meta["test_accuracy"] == metrics["test_accuracy"]
    assert meta["input_shape"] == [28, 28]


def test_page_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "<canvas" in page.text and "/predict" in page.text
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/v1/models/{name}:predict", "/v2/models/{name}/infer", "/health",
            "/metadata"} <= set(schema["paths"])  # fmt: skip


def test_pixels_give_the_predictors_answer(client, tiny_runs, digits):
    x, _ = digits
    expected = Predictor.from_run(tiny_runs[0]).predict_proba(x[:1])[0]
    answer = client.post("/predict", json={"pixels": (x[0] / 255).tolist()}).json()
    assert answer["digit"] == int(expected.argmax())
    assert answer["probabilities"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert answer["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert np.array(answer["preprocessed"]).shape == (28, 28)


def test_upload_and_base64_image_agree(client, digits):
    x, y = digits
    image = png(255 - x[1])  # dark ink on white paper, as a scan would be
    uploaded = client.post("/predict", files={"file": ("d.png", image, "image/png")}).json()
    b64 = base64.b64encode(image).decode()
    as_json = client.post("/predict", json={"image": b64}).json()
    as_data_url = client.post("/predict", json={"image": "data:image/png;base64," + b64}).json()
    assert uploaded == as_json == as_data_url
    assert uploaded["digit"] == y[1]


def test_tf_serving_format(client, tiny_runs, digits):
    x, _ = digits
    instances = [(x[0] / 255).tolist(), (x[1] / 255).reshape(-1).tolist()]  # 28x28 and flat
    response = client.post("/v1/models/mnist:predict", json={"instances": instances})
    assert response.status_code == 200
    predictions = np.array(response.json()["predictions"])
    expected = Predictor.from_run(tiny_runs[0]).predict_proba(x[:2])
    np.testing.assert_allclose(predictions, expected, atol=1e-5)


def test_the_predictor_is_a_dependency_tests_can_replace(app, client):
    class Always7:
        def predict_proba(self, digits):
            return np.eye(10, dtype=np.float32)[[7] * len(digits)]

    app.dependency_overrides[get_predictor] = Always7
    try:
        answer = client.post("/predict", json={"pixels": np.zeros((28, 28)).tolist()}).json()
    finally:
        app.dependency_overrides.clear()
    assert answer["digit"] == 7


GOOD = np.zeros((28, 28)).tolist()


@pytest.mark.parametrize(
    ("request_kwargs", "status", "detail"),
    [
        ({"json": {"pixels": np.zeros((27, 28)).tolist()}}, 422, "at least 28 items"),
        ({"json": {"pixels": [[1.5] * 28] * 28}}, 422, "less than or equal to 1"),
        ({"json": {"pixels": [[-0.1] * 28] * 28}}, 422, "greater than or equal to 0"),
        ({"content": NAN_PIXELS, "headers": {"content-type": "application/json"}}, 422,
         "finite number"),
        ({"json": {"pixels": GOOD, "image": "aGk="}}, 422, "exactly one of"),
        ({"json": {}}, 422, "exactly one of"),
        ({"json": {"image": "%%% not base64"}}, 400, "not valid base64"),
        ({"json": {"image": base64.b64encode(b"GIF89a nonsense").decode()}}, 400, "not an image"),
        ({"files": {"file": ("x.png", b"\x89PNG\r\n\x1a\n truncated", "image/png")}}, 400, None),
        ({"files": {"file": ("blank.png", png(np.zeros((40, 40), np.uint8)), "image/png")}},
         400, "no digit found"),
        ({"files": {"other": ("x.png", b"abc", "image/png")}}, 422, "'file' part"),
        ({"content": b"pixels", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
        ({"content": b"x" * (BODY_LIMIT + 1), "headers": {"content-type": "application/json"}},
         413, "1,000,000-byte limit"),
    ],
    ids=["27-rows", "above-1", "below-0", "nan", "both", "neither", "bad-base64", "not-image",
         "truncated-png", "blank", "no-file-part", "wrong-type", "too-large"],
)  # fmt: skip
def test_bad_input_gets_a_4xx_with_a_reason(client, request_kwargs, status, detail):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"]
    if detail:
        assert detail in str(body["detail"])


def test_decompression_bomb_is_a_4xx(client, png_claiming):
    response = client.post("/predict", files={"file": ("bomb.png", png_claiming(20_000, 20_000))})
    assert response.status_code == 400
    assert "pixel limit" in response.json()["detail"]


@pytest.mark.parametrize(
    ("instances", "error"),
    [([], "1 to 256 digits a request"), ([[0] * 784] * 257, "1 to 256 digits a request"),
     ([[0.5] * 700], "each digit must be 28x28, 28x28x1, 784 numbers"),
     ([GOOD, "x"], "pixels must be numbers")],
    ids=["empty", "over-the-batch-limit", "wrong-length", "not-numbers"],
)  # fmt: skip
def test_bad_tf_serving_batches(client, instances, error):
    response = client.post("/v1/models/mnist:predict", json={"instances": instances})
    assert response.status_code == 422
    assert response.json() == {"error": f"instances: {error}"}

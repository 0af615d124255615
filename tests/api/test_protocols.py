"""TensorFlow Serving's REST API, with the request bodies of its documentation, and the
Open Inference Protocol (v2) through Triton's own client against a real server."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mnistlab.config import ServeConfig
from mnistlab.predictor import Predictor
from mnistlab.serve import create_app

OK = {"error_code": "OK", "error_message": ""}
STATUS = {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": OK}]}


@pytest.fixture(scope="module")
def served(tiny_runs, mnist):
    """A Dense run's app, its predictor, and 3 test digits in [0, 1]."""
    with TestClient(create_app(ServeConfig(run=str(tiny_runs[0])))) as client:
        x = (mnist.x_test[:3] / 255).astype(np.float32)
        yield client, Predictor.from_run(tiny_runs[0]).predict_proba(mnist.x_test[:3]), x


@pytest.mark.parametrize(
    "path",
    ["/v1/models/mnist", "/v1/models/mnist/versions/1", "/v1/models/mnist/labels/stable"],
)
def test_model_status_as_tf_serving_gives_it(served, path):
    client, _, _ = served
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == STATUS


def test_metadata_names_the_signatures_input_and_output(served):
    client, _, _ = served
    body = client.get("/v1/models/mnist/metadata").json()
    assert body["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    ((name, tensor),) = signature["inputs"].items()
    assert name == "images" and tensor["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in tensor["tensor_shape"]["dim"]] == ["-1", "28", "28"]
    (output,) = signature["outputs"].values()
    assert [d["size"] for d in output["tensor_shape"]["dim"]] == ["-1", "10"]


def _bodies(x: np.ndarray) -> dict[str, tuple[str, dict, str]]:
    """TF Serving's documented request forms: (path, body, the answer's key)."""
    rows, channel = x.tolist(), x[..., None].tolist()
    return {
        "row": ("/v1/models/mnist:predict", {"instances": rows}, "predictions"),
        "row, channel axis": ("/v1/models/mnist:predict", {"instances": channel}, "predictions"),
        "row, flat": ("/v1/models/mnist:predict",
                      {"instances": x.reshape(len(x), -1).tolist()}, "predictions"),
        "named instances": ("/v1/models/mnist:predict",
                            {"instances": [{"images": d} for d in channel]}, "predictions"),
        "signature_name": ("/v1/models/mnist:predict",
                           {"signature_name": "serving_default", "instances": rows}, "predictions"),
        "columnar": ("/v1/models/mnist:predict", {"inputs": channel}, "outputs"),
        "columnar, named": ("/v1/models/mnist:predict", {"inputs": {"images": rows}}, "outputs"),
        "version": ("/v1/models/mnist/versions/1:predict", {"instances": rows}, "predictions"),
        "label": ("/v1/models/mnist/labels/stable:predict", {"instances": rows}, "predictions"),
    }  # fmt: skip


@pytest.mark.parametrize("form", list(_bodies(np.zeros((1, 28, 28)))))
def test_every_documented_predict_form_answers_the_models_probabilities(served, form):
    client, expected, x = served
    path, body, key = _bodies(x)[form]
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()[key], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [("/v1/models/other:predict", {"instances": [[[0] * 28] * 28]}, 404,
      "Servable not found for request: Latest(other)"),
     ("/v1/models/mnist/versions/2:predict", {"instances": [[[0] * 28] * 28]}, 404,
      "Servable not found for request: Specific(mnist, 2)"),
     ("/v1/models/mnist:predict", {"signature_name": "other", "instances": [[[0] * 28] * 28]},
      400, 'Serving signature name: "other" not found in signature def'),
     ("/v1/models/mnist:predict", {"instances": [], "inputs": []}, 400,
      "Missing 'inputs' or 'instances' key"),
     ("/v1/models/mnist:predict", {}, 400, "Missing 'inputs' or 'instances' key"),
     ("/v1/models/mnist:predict", {"instances": [[0.5] * 700]}, 422,
      "instances: each digit must be 28x28, 28x28x1, 784 numbers"),
     ("/v1/models/mnist:predict", {"instances": [[True] * 784]}, 422,
      "instances: pixels must be numbers"),
     ("/v1/models/mnist:predict", {"instances": [["0.5"] * 784]}, 422,
      "instances: pixels must be numbers"),
     ("/v1/models/mnist:predict", {"instances": [[2.0] * 784]}, 422,
      "instances: pixels must be numbers in [0, 1]"),
     ("/v1/models/mnist:predict", {"instances": [[0.5] * 784] * 257}, 422,
      "instances: 1 to 256 digits a request"),
     ("/v1/models/mnist:predict", {"instances": [{"x": [0.5] * 784}]}, 400,
      "each named instance must have the one input 'images'")],
    ids=["model", "version", "signature", "both", "neither", "shape", "booleans", "strings",
         "range", "257", "input-name"],
)  # fmt: skip
def test_bad_requests_get_tf_servings_error_body(served, path, body, status, error):
    client, _, _ = served
    response = client.post(path, json=body)
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_not_a_number_is_refused_without_echoing_the_input(served):
    client, _, _ = served
    body = '{"instances": [[NaN' + ",0" * 783 + "]]}"
    response = client.post("/v1/models/mnist:predict", content=body,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert response.json() == {"error": "instances: pixels must be numbers in [0, 1]"}


@pytest.mark.parametrize("kind", ["dense", "cnn"])
def test_tritons_client_against_a_real_server(kind, served_on_loopback, tiny_runs, conv_runs,
                                              mnist):  # fmt: skip
    """Triton's own client, with its defaults (binary tensor data both ways) and with
    JSON, on every v2 route; the probabilities are the run's own."""
    httpclient = pytest.importorskip("tritonclient.http")
    run = tiny_runs[0] if kind == "dense" else conv_runs["cnn"]
    x = (mnist.x_test[:16] / 255).astype(np.float32)
    expected = Predictor.from_run(run).predict_proba(mnist.x_test[:16])
    with served_on_loopback(run) as url:
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mnist") and client.is_model_ready("mnist", "1")
        metadata = client.get_model_metadata("mnist")
        assert metadata["inputs"] == [{"name": "images", "datatype": "FP32",
                                       "shape": [-1, 28, 28]}]  # fmt: skip
        binary = httpclient.InferInput("images", list(x.shape), "FP32")
        binary.set_data_from_numpy(x)  # binary_data=True: the client's default
        result = client.infer("mnist", [binary])
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
        assert result.as_numpy("digit").tolist() == expected.argmax(1).tolist()
        as_json = httpclient.InferInput("images", [16, 28, 28, 1], "UINT8")
        as_json.set_data_from_numpy(mnist.x_test[:16, :, :, None], binary_data=False)
        wanted = [httpclient.InferRequestedOutput("probabilities", binary_data=False)]
        result = client.infer("mnist", [as_json], outputs=wanted, request_id="r1")
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
        assert result.as_numpy("digit") is None and result.get_response()["id"] == "r1"
        with pytest.raises(Exception, match="Servable not found"):
            client.infer("other", [binary])
        with pytest.raises(Exception, match="unexpected inference input"):
            client.infer("mnist", [_named("x", x[:1])])


def _named(name: str, x: np.ndarray):
    import tritonclient.http as httpclient

    tensor = httpclient.InferInput(name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return tensor


@pytest.mark.parametrize(
    ("body", "error"),
    [({"inputs": [{"name": "images", "datatype": "FP64", "shape": [1, 784], "data": [0] * 784}]},
      "datatype 'FP64': this model takes FP32 or UINT8"),
     ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784], "data": [0] * 700}]},
      "'data' holds 700 numbers; the shape [1, 784] needs 784"),
     ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 784],
                   "data": [300] * 784}]}, "UINT8 pixels are 0 to 255"),
     ({"inputs": []}, "'inputs' must hold the one input 'images'"),
     ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784], "data": [0] * 784}],
       "outputs": [{"name": "logits"}]},
      "unexpected inference output 'logits'; the outputs are 'probabilities' and 'digit'")],
    ids=["datatype", "count", "uint8-range", "no-input", "output-name"],
)  # fmt: skip
def test_bad_inference_requests_get_the_protocols_error_body(served, body, error):
    client, _, _ = served
    response = client.post("/v2/models/mnist/infer", content=json.dumps(body))
    assert (response.status_code, response.json()) == (400, {"error": error})

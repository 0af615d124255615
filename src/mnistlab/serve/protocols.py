"""The serving protocols that clients already speak: TensorFlow Serving's REST API and the
Open Inference Protocol (v2: KServe, Triton, Seldon MLServer) over HTTP, with its binary
tensor data extension, which Triton's own client uses by default. Both answer through the
app's batcher, as /predict does; errors are each protocol's `{"error": "..."}`."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, and
# those made in _tf_routes and _v2_routes name a type local to the call.
import typing
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic_core import from_json, to_json

from mnistlab.data import IMAGE_SHAPE, NUM_CLASSES
from mnistlab.serve.schemas import MAX_BATCH

MODEL = "mnist"
VERSION = "1"
INPUT = "images"  # (N, 28, 28) pixels in [0, 1], white ink: MNIST-style digits
PROBABILITIES, DIGIT = "probabilities", "digit"  # the outputs: (N, 10) and (N,)
SIGNATURE = "serving_default"
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
# Shapes a batch of digits may come in: 28x28, 28x28x1 (what a Keras CNN takes), flat 784.
SHAPES = ((*IMAGE_SHAPE,), (*IMAGE_SHAPE, 1), (PIXELS,))
HEADER_LENGTH = "Inference-Header-Content-Length"  # the binary extension's JSON part
# The v2 datatypes a batch of digits is taken in: UINT8 pixels are 0..255.
DATATYPES = {"FP32": np.float32, "UINT8": np.uint8}


_PIXEL = {"type": "number", "minimum": 0, "maximum": 1}
_DIGIT = {"type": "array", "minItems": 28, "maxItems": 28,
          "items": {"type": "array", "minItems": 28, "maxItems": 28, "items": _PIXEL}}  # fmt: skip
_BATCH = {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": _DIGIT}
# The request bodies as OpenAPI shows them (in /docs, and to schemathesis): the routes
# read the body themselves, to answer in each protocol's own error body.
TF_PREDICT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string", "default": SIGNATURE},
        "instances": _BATCH,
        "inputs": {"oneOf": [_BATCH, {"type": "object", "properties": {INPUT: _BATCH}}]},
    },
}}}}}  # fmt: skip
V2_INFER_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object",
            "required": ["name", "datatype", "shape", "data"],
            "properties": {
                "name": {"type": "string", "enum": [INPUT]},
                "datatype": {"type": "string", "enum": list(DATATYPES)},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "data": {"type": "array", "items": {"type": "number"}},
            },
        }},
        "outputs": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"}}}},
    },
}}}}}  # fmt: skip


class ProtocolError(Exception):
    """A request the protocol refuses: its status code and reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def protocol_error(_: Request, error: ProtocolError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=error.status)


def _predictor(request: Request):
    return request.app.state.predictor


Predictor = Annotated[typing.Any, Depends(_predictor)]
router = APIRouter()


def digits(values: typing.Any, what: str) -> np.ndarray:
    """A batch of MNIST-style digits (N, 28, 28) float32 from nested lists or an array
    in any of SHAPES; a ProtocolError (422) says what is wrong, never echoing it."""
    if not _numbers_only(values):  # NumPy would take "0.5" and true as numbers
        raise ProtocolError(422, f"{what}: pixels must be numbers")
    try:
        batch = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError):
        raise ProtocolError(422, f"{what}: not an array of numbers of one shape") from None
    if batch.ndim == 0 or batch.shape[1:] not in SHAPES:
        shapes = ", ".join("x".join(map(str, s)) for s in SHAPES)
        raise ProtocolError(422, f"{what}: each digit must be {shapes} numbers")
    if not 1 <= len(batch) <= MAX_BATCH:
        raise ProtocolError(422, f"{what}: 1 to {MAX_BATCH} digits a request")
    if not np.isfinite(batch).all() or batch.min() < 0 or batch.max() > 1:
        raise ProtocolError(422, f"{what}: pixels must be numbers in [0, 1]")
    return batch.reshape(len(batch), *IMAGE_SHAPE)


def _numbers_only(values: typing.Any) -> bool:
    """Nested lists of ints and floats (not bools or strings), or an array."""
    if isinstance(values, np.ndarray):
        return True
    stack = [values]
    while stack:
        item = stack.pop()
        if type(item) is list:
            if item and type(item[0]) is not list:  # a row: its numbers, at C speed
                if not all(type(v) is float or type(v) is int for v in item):
                    return False
            else:
                stack.extend(item)
        elif type(item) is not float and type(item) is not int:
            return False
    return True


async def json_body(request: Request) -> typing.Any:
    try:
        return from_json(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(400, "the body is not JSON") from None


JSONBody = Annotated[typing.Any, Depends(json_body)]


def _served(name: str, version: str | None) -> None:
    if name != MODEL:
        raise ProtocolError(404, f"Servable not found for request: Latest({name})")
    if version is not None and version != VERSION:
        raise ProtocolError(404, f"Servable not found for request: Specific({name}, {version})")


def _json(body: dict) -> Response:
    return Response(to_json(body), media_type="application/json")


# TensorFlow Serving's REST API -------------------------------------------------------
# /v1/models/NAME[/versions/N | /labels/L][/metadata | :predict]; one version: 1, and
# every label names it.


def _status(name: str, version: str | None) -> Response:
    _served(name, version)
    state = {"version": VERSION, "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}  # fmt: skip
    return _json({"model_version_status": [state]})


def _tensor_info(shape: tuple[int, ...], dtype: str) -> dict:
    dims = [{"size": str(size), "name": ""} for size in shape]
    return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False},
            "name": f"{SIGNATURE}_{INPUT}:0"}  # fmt: skip


def _metadata(name: str, version: str | None) -> Response:
    _served(name, version)
    signature = {
        "inputs": {INPUT: _tensor_info((-1, *IMAGE_SHAPE), "DT_FLOAT")},
        "outputs": {PROBABILITIES: _tensor_info((-1, NUM_CLASSES), "DT_FLOAT")},
        "method_name": "tensorflow/serving/predict",
    }
    return _json({
        "model_spec": {"name": MODEL, "signature_name": "", "version": VERSION},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    })  # fmt: skip


def _predict(name: str, version: str | None, body: typing.Any, predictor) -> Response:
    _served(name, version)
    if not isinstance(body, dict):
        raise ProtocolError(400, "the body must be a JSON object")
    extra = set(body) - {"signature_name", "instances", "inputs"}
    if extra:
        raise ProtocolError(400, f"unknown field: {sorted(extra)[0]!r}")
    signature = body.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise ProtocolError(
            400, f'Serving signature name: "{signature}" not found in signature def'
        )
    if ("instances" in body) == ("inputs" in body):
        raise ProtocolError(400, "Missing 'inputs' or 'instances' key")
    if "instances" in body:  # the row format: a digit each, or {INPUT: digit} each
        rows = body["instances"]
        if not isinstance(rows, list):
            raise ProtocolError(400, "'instances' must be a list")
        if rows and all(isinstance(r, dict) for r in rows):
            if any(set(r) != {INPUT} for r in rows):
                raise ProtocolError(400, f"each named instance must have the one input {INPUT!r}")
            rows = [r[INPUT] for r in rows]
        if not 1 <= len(rows) <= MAX_BATCH:
            raise ProtocolError(422, f"instances: 1 to {MAX_BATCH} digits a request")
        # Each instance in its own layout: 28x28, 28x28x1 and 784 may be mixed.
        batch = np.concatenate([digits([row], "instances") for row in rows])
        return _json({"predictions": predictor.predict_proba(batch).tolist()})
    columns = body["inputs"]  # the columnar format: the batch, or {INPUT: batch}
    if isinstance(columns, dict):
        if set(columns) != {INPUT}:
            raise ProtocolError(400, f"'inputs' must name the one input {INPUT!r}")
        columns = columns[INPUT]
    probabilities = predictor.predict_proba(digits(columns, "inputs"))
    return _json({"outputs": probabilities.tolist()})


def _latest(name: str) -> tuple[str, str | None]:
    return name, None


def _version(name: str, v: str) -> tuple[str, str | None]:
    return name, v


def _label(name: str, v: str) -> tuple[str, str | None]:
    return name, VERSION  # every label names the one version


def _tf_routes(prefix: str, spec) -> None:
    """The three routes under one prefix: the model, a version of it, or a label."""
    path, tags = f"/v1/models/{{name}}{prefix}", ["TensorFlow Serving"]
    Served = Annotated[tuple[str, str | None], Depends(spec)]

    @router.get(path, tags=tags, summary="model status")
    def status(served: Served) -> Response:
        return _status(*served)

    @router.get(f"{path}/metadata", tags=tags, summary="model metadata")
    def metadata(served: Served) -> Response:
        return _metadata(*served)

    @router.post(f"{path}:predict", tags=tags, summary="predict", openapi_extra=TF_PREDICT_BODY)
    def predict(served: Served, predictor: Predictor, body: JSONBody) -> Response:
        return _predict(*served, body, predictor)


_tf_routes("", _latest)
_tf_routes("/versions/{v}", _version)
_tf_routes("/labels/{v}", _label)


# The Open Inference Protocol (v2) -----------------------------------------------------


@router.get("/v2", tags=["Open Inference Protocol"], summary="server metadata")
def server_metadata() -> Response:
    return _json({"name": "mnistlab", "version": VERSION, "extensions": ["binary_tensor_data"]})


@router.get("/v2/health/live", tags=["Open Inference Protocol"], summary="server live")
def live() -> Response:
    return _json({"live": True})


@router.get("/v2/health/ready", tags=["Open Inference Protocol"], summary="server ready")
def ready() -> Response:
    return _json({"ready": True})


def _v2_metadata(name: str, version: str | None) -> Response:
    _served(name, version)
    return _json({
        "name": MODEL, "versions": [VERSION], "platform": "mnistlab",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, *IMAGE_SHAPE]}],
        "outputs": [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, NUM_CLASSES]},
                    {"name": DIGIT, "datatype": "INT64", "shape": [-1]}],
    })  # fmt: skip


def _v2_ready(name: str, version: str | None) -> Response:
    _served(name, version)
    return _json({"name": MODEL, "ready": True})


async def infer_body(request: Request) -> tuple[dict, bytes]:
    """The request's JSON, and the binary tensor data after it (the extension)."""
    body = await request.body()
    header = request.headers.get(HEADER_LENGTH)
    try:
        split = len(body) if header is None else int(header)
    except ValueError:
        raise ProtocolError(400, f"{HEADER_LENGTH} is not a number") from None
    if not 0 <= split <= len(body):
        raise ProtocolError(400, f"{HEADER_LENGTH} is past the body's end")
    try:
        request_json = from_json(body[:split])
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(400, "the inference request is not JSON") from None
    if not isinstance(request_json, dict):
        raise ProtocolError(400, "the inference request must be a JSON object")
    return request_json, body[split:]


InferBody = Annotated[tuple[dict, bytes], Depends(infer_body)]


def _infer_input(request_json: dict, binary: bytes) -> np.ndarray:
    inputs = request_json.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(400, f"'inputs' must hold the one input {INPUT!r}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT:
        raise ProtocolError(400, f"unexpected inference input {tensor.get('name')!r} for "
                                 f"model {MODEL!r}: its input is {INPUT!r}")  # fmt: skip
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype not in DATATYPES:
        raise ProtocolError(400, f"datatype {datatype!r}: this model takes FP32 or UINT8")
    if not (isinstance(shape, list) and shape and all(type(s) is int and s > 0 for s in shape)):
        raise ProtocolError(400, "'shape' must be a list of positive whole numbers")
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    dtype = np.dtype(DATATYPES[datatype])
    count = int(np.prod(shape))
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or size != len(binary):
            raise ProtocolError(400, "binary_data_size does not match the shape and the data")
        values = np.frombuffer(binary, dtype=dtype.newbyteorder("<"))
    else:
        data = tensor.get("data")
        try:
            values = np.asarray(data, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError):
            raise ProtocolError(400, "'data' must be numbers") from None
        if values.size != count:
            raise ProtocolError(400, f"'data' holds {values.size} numbers; the shape {shape} "
                                     f"needs {count}")  # fmt: skip
    batch = values.reshape(shape).astype(np.float32)
    if datatype == "UINT8":
        if values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise ProtocolError(400, "UINT8 pixels are 0 to 255")
        batch = batch / 255.0
    try:
        return digits(batch, INPUT)
    except ProtocolError as e:
        raise ProtocolError(400, str(e)) from None


def _infer(name: str, version: str | None, body: tuple[dict, bytes], predictor) -> Response:
    _served(name, version)
    request_json, binary = body
    batch = _infer_input(request_json, binary)
    probabilities = predictor.predict_proba(batch).astype(np.float32)
    outputs = {PROBABILITIES: ("FP32", probabilities),
               DIGIT: ("INT64", probabilities.argmax(axis=1).astype(np.int64))}  # fmt: skip
    parameters = request_json.get("parameters") or {}
    all_binary = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    asked = request_json.get("outputs")
    if asked is None:
        asked = [{"name": name} for name in outputs]
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise ProtocolError(400, "'outputs' must be a list of objects")
    answer: dict[str, typing.Any] = {"model_name": MODEL, "model_version": VERSION}
    if "id" in request_json:
        answer["id"] = request_json["id"]
    answer["outputs"], chunks = [], []
    for output in asked:
        if output.get("name") not in outputs:
            raise ProtocolError(
                400,
                f"unexpected inference output {output.get('name')!r}; the outputs are "
                f"{PROBABILITIES!r} and {DIGIT!r}",
            )
        datatype, values = outputs[output["name"]]
        described = {"name": output["name"], "datatype": datatype, "shape": list(values.shape)}
        wanted = output.get("parameters") or {}
        if all_binary or (isinstance(wanted, dict) and wanted.get("binary_data") is True):
            data = values.astype(values.dtype.newbyteorder("<")).tobytes()
            described["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            described["data"] = values.reshape(-1).tolist()
        answer["outputs"].append(described)
    head = to_json(answer)
    if not chunks:
        return Response(head, media_type="application/json")
    return Response(b"".join([head, *chunks]), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(head))})  # fmt: skip


def _v2_routes(prefix: str, spec) -> None:
    path, tags = f"/v2/models/{{name}}{prefix}", ["Open Inference Protocol"]
    Served = Annotated[tuple[str, str | None], Depends(spec)]

    @router.get(path, tags=tags, summary="model metadata")
    def metadata(served: Served) -> Response:
        return _v2_metadata(*served)

    @router.get(f"{path}/ready", tags=tags, summary="model ready")
    def model_ready(served: Served) -> Response:
        return _v2_ready(*served)

    @router.post(f"{path}/infer", tags=tags, summary="inference", openapi_extra=V2_INFER_BODY)
    def infer(served: Served, predictor: Predictor, body: InferBody) -> Response:
        return _infer(*served, body, predictor)


_v2_routes("", _latest)
_v2_routes("/versions/{v}", _version)

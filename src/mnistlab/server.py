"""The HTTP API and the drawing page: create_app(config) -> FastAPI.

The model loads once, in the lifespan; the predictor is a dependency that tests
override. Prediction routes are plain `def` (FastAPI runs them in its thread pool, off
the event loop); only reading the request body is async.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib.resources
import os
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from threadpoolctl import threadpool_limits

from mnistlab import images, runs
from mnistlab.config import ServeConfig
from mnistlab.predict import Predictor
from mnistlab.schemas import (
    Metadata,
    PredictJSON,
    PredictResponse,
    TFServingRequest,
    TFServingResponse,
)

# Environment variable through which `mnistlab serve` hands its config to uvicorn workers.
CONFIG_ENV = "MNISTLAB_SERVE_CONFIG"
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictJSON.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def create_app(config: ServeConfig) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # One image is a few small matrix products: BLAS threads only contend with the
        # request threads for the cores (+18% requests/s at one thread, serve_load.py).
        blas = threadpool_limits(limits=1, user_api="blas")
        app.state.predictor = Predictor.load(Path(config.run), config.model, config.engine)
        app.state.metadata = _metadata(config, app.state.predictor)
        yield
        blas.restore_original_limits()

    app = FastAPI(
        title="mnistlab",
        summary="Handwritten digit recognition with a model trained by mnistlab.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return importlib.resources.files("mnistlab").joinpath("static/index.html").read_text()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata", response_model=Metadata)
    def metadata(request: Request) -> Metadata:
        return request.app.state.metadata

    @app.post("/predict", response_model=PredictResponse, openapi_extra=PREDICT_BODY)
    def predict(digit: DigitInput, predictor: PredictorDep) -> Response:
        (answer,) = predictor.predict_digits(digit[None])
        body = PredictResponse(
            digit=answer.digit,
            probability=answer.probability,
            probabilities=answer.probabilities,
            preprocessed=np.round(answer.preprocessed, 4).tolist(),
        )
        # Serialised here: FastAPI would validate the 28x28 answer again against
        # response_model, a quarter of the route's time (benchmarks/serve_load.py).
        return Response(body.model_dump_json(), media_type="application/json")

    @app.post("/v1/models/mnist:predict", response_model=TFServingResponse)
    def tf_serving_predict(body: TFServingRequest, predictor: PredictorDep) -> Response:
        # Instances may mix the 28x28 and the flat 784 layouts.
        batch = np.stack([np.asarray(i, np.float32).reshape(28, 28) for i in body.instances])
        answer = TFServingResponse(predictions=predictor.predict_proba(batch).tolist())
        return Response(answer.model_dump_json(), media_type="application/json")

    return app


def create_app_from_env() -> FastAPI:
    """The app for uvicorn's --factory, configured by `mnistlab serve` through the env."""
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def get_predictor(request: Request) -> Predictor:
    return request.app.state.predictor


async def read_digit(request: Request) -> np.ndarray:
    """The request's digit as (28, 28) float32, from multipart, JSON pixels or base64 image.

    Async only to read the body; decoding and preprocessing run in the thread pool.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "multipart body needs a 'file' part holding the image")
        data = await upload.read()
        return await run_in_threadpool(_digit_from_image, data)
    if content_type.startswith("application/json"):
        try:
            body = PredictJSON.model_validate_json(await request.body())
        except ValidationError as e:
            raise HTTPException(422, _validation_detail(e)) from None
        if body.pixels is not None:
            return np.array(body.pixels, dtype=np.float32)
        return await run_in_threadpool(_digit_from_image, _b64decode(body.image))
    raise HTTPException(415, "send multipart/form-data with a 'file', or application/json")


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
DigitInput = Annotated[np.ndarray, Depends(read_digit)]


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, before they are read into memory."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope, receive, send):
        detail = f"request body over the {self.max_bytes:,}-byte limit"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    pass


def _digit_from_image(data: bytes) -> np.ndarray:
    try:
        return images.load_digit(data)
    except images.ImageError as e:
        raise HTTPException(400, str(e)) from None


def _b64decode(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "'image' is not valid base64") from None


def _validation_detail(error: ValidationError) -> list[dict]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def _metadata(config: ServeConfig, predictor: Predictor) -> Metadata:
    """What is served. An .onnx file names its run in the record export wrote beside it."""
    target = Path(config.run)
    if target.suffix == ".onnx":
        run_dir, accuracy = runs.export_record(target)
    else:
        run_dir = target
        accuracy = runs.read_json(run_dir / runs.METRICS)["test_accuracy"]
    has_run = run_dir is not None and (run_dir / runs.CONFIG).is_file()
    return Metadata(
        run=str(run_dir) if run_dir else None,
        preset=runs.read_json(run_dir / runs.CONFIG)["config"]["preset"] if has_run else None,
        model_file=predictor.source,
        engine=predictor.engine,
        test_accuracy=accuracy,
        input_shape=[28, 28],
    )

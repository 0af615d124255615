"""The HTTP API and the drawing page: create_app(config) -> FastAPI.

The model loads once, in the lifespan; one inference thread runs it on the requests'
images, batched (serve.batcher). The predictor is a dependency that tests override.
Routes are plain `def` (FastAPI runs them in its thread pool, off the event loop); only
reading the request body is async."""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import hashlib
import importlib.resources
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from swagger_ui_bundle import swagger_ui_path
from threadpoolctl import threadpool_limits

from mnistlab import images, runs
from mnistlab.config import MAX_DIGITS, ServeConfig
from mnistlab.data import IMAGE_SHAPE
from mnistlab.predictor import Predictor
from mnistlab.read import Reader, SegmentError, is_unsure, reader_of
from mnistlab.serve import protocols
from mnistlab.serve.batcher import Batcher
from mnistlab.serve.limits import CSP, BodyLimit, HeadAsGet, SecurityHeaders
from mnistlab.serve.protocols import ProtocolError, protocol_error
from mnistlab.serve.schemas import (
    Metadata,
    PredictJSON,
    PredictResponse,
    ReadJSON,
    ReadResponse,
)

logger = logging.getLogger("uvicorn.error")
DOCS_ASSETS = "/docs-assets"


def _image_body(schema) -> dict:
    """OpenAPI's view of a route that takes a multipart 'file' or a JSON body."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema.model_json_schema()},
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


def get_predictor(request: Request) -> Batcher | Predictor:
    """What the routes call `predict_proba` on: the inference thread's batcher."""
    return request.app.state.predictor


def get_reader(request: Request) -> Reader:
    return request.app.state.reader


async def read_digit(request: Request) -> np.ndarray:
    """The request's digit as (28, 28) float32, from multipart, JSON pixels or base64 image.

    Async only to read the body; decoding and preprocessing run in the thread pool.
    """
    body = await _body(request, PredictJSON)
    if isinstance(body, PredictJSON) and body.pixels is not None:
        return np.array(body.pixels, dtype=np.float32)
    data = body if isinstance(body, bytes) else _b64decode(body.image)
    return await run_in_threadpool(_decoded, images.load_digit, data)


async def read_gray(request: Request) -> images.Decoded:
    """The request's image, decoded, from multipart or base64 JSON."""
    body = await _body(request, ReadJSON)
    data = body if isinstance(body, bytes) else _b64decode(body.image)
    return await run_in_threadpool(_decoded, images.decode, data)


async def _body(request: Request, schema):
    """A multipart body's one 'file' (bytes), or a JSON body validated by `schema`."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        form = await request.form()
        uploads = form.getlist("file")
        if len(uploads) != 1 or isinstance(uploads[0], str):
            raise HTTPException(422, "multipart body needs exactly one 'file' part: the image")
        return await uploads[0].read()
    if media_type == "application/json":
        try:
            return schema.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None
    raise HTTPException(415, "send multipart/form-data with a 'file', or application/json")


PredictorDep = Annotated[Batcher | Predictor, Depends(get_predictor)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
DigitInput = Annotated[np.ndarray, Depends(read_digit)]
GrayInput = Annotated[images.Decoded, Depends(read_gray)]


def create_app(config: ServeConfig) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # One image is a few small matrix products: BLAS threads only contend with the
        # request threads for the cores (+18% requests/s at one thread, serve_load.py).
        blas = threadpool_limits(limits=1, user_api="blas")
        predictor = Predictor.load(Path(config.run), config.model, config.engine)
        # Compile now every batch shape the inference thread can send, not on a request.
        predictor.warm_up(config.max_batch)
        batcher = Batcher(predictor.predict_proba, config.max_batch)
        # Keras and JAX leave millions of long-lived objects; a full collection that walks
        # them all stalls every request for 100 ms or more (serve_load.py's p99).
        gc.freeze()
        app.state.predictor = batcher
        app.state.reader = Reader.fitted(batcher, reader_of(config.run))
        app.state.metadata = describe(config, predictor)
        yield
        batcher.close()
        blas.restore_original_limits()

    app = FastAPI(
        title="mnistlab",
        summary="Handwritten digit recognition with a model trained by mnistlab.",
        lifespan=lifespan,
        # Served from the swagger-ui-bundle package, so /docs works without internet.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ProtocolError, protocol_error)
    app.include_router(router)
    app.include_router(protocols.router)
    return app


router = APIRouter()


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler echoes the input, which may be a whole batch, or a NaN that
    # JSON cannot encode (a 500).
    return JSONResponse({"detail": _error_detail(error.errors())}, status_code=422)


async def _client_gone(request: Request, error: ClientDisconnect) -> Response:
    logger.warning("client disconnected before its request arrived: %s", request.url.path)
    return Response(status_code=400)  # nobody is there to read it


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    return _with_csp(
        get_swagger_ui_html(
            openapi_url=request.app.openapi_url,
            title=f"{request.app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )
    )


@functools.cache
def _drawing_page() -> str:
    return importlib.resources.files(__package__).joinpath("static/index.html").read_text()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    return _with_csp(HTMLResponse(_drawing_page()))


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metadata", response_model=Metadata)
def metadata(request: Request) -> Metadata:
    return request.app.state.metadata


@router.post("/predict", response_model=PredictResponse, openapi_extra=_image_body(PredictJSON))
def predict(digit: DigitInput, predictor: PredictorDep) -> Response:
    (probabilities,) = predictor.predict_proba(digit[None])
    body = PredictResponse(
        digit=int(probabilities.argmax()),
        probability=float(probabilities.max()),
        probabilities=probabilities.tolist(),
        preprocessed=np.round(digit, 4).tolist(),
    )
    # Serialised here: FastAPI would validate the 28x28 answer again against
    # response_model, a quarter of the route's time (benchmarks/serve_load.py).
    return Response(body.model_dump_json(), media_type="application/json")


@router.post("/read", response_model=ReadResponse, openapi_extra=_image_body(ReadJSON))
def read(
    gray: GrayInput,
    reader: ReaderDep,
    length: Annotated[int | None, Query(ge=1, le=MAX_DIGITS)] = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> Response:
    """The number written in the image: its digits, boxes and probabilities. Unsure below
    `min_confidence` (default: the served reader's calibrated threshold)."""
    try:
        reading = reader.read(gray, length)
    except SegmentError as e:
        raise HTTPException(422, str(e)) from None
    record = reading.as_record()
    threshold = reader.min_confidence if min_confidence is None else min_confidence
    record["unsure"] = is_unsure(reading.confidence, threshold)
    return Response(json.dumps(record), media_type="application/json")


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    """The page with a CSP that allows its own files and its inline scripts and styles,
    each by its hash: nothing injected into it runs."""
    page.headers["content-security-policy"] = _policy(page.body.decode())
    return page


@functools.lru_cache(maxsize=4)  # the drawing page and /docs: the same HTML every time
def _policy(html: str) -> str:
    allowed = {
        kind: " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in re.findall(rf"<{kind}>(.*?)</{kind}>", html, re.DOTALL)
        )
        for kind in ("script", "style")
    }
    return f"{CSP}; script-src 'self' {allowed['script']}; style-src 'self' {allowed['style']}"


def _decoded(decode, data: bytes):
    """decode(data), with an image that cannot be read (or holds no digit) a 400."""
    try:
        return decode(data)
    except images.ImageError as e:
        raise HTTPException(400, str(e)) from None


def _b64decode(text: str) -> bytes:
    """Base64 as the usual decoders take it: line breaks and spaces anywhere, the closing
    '=' padding optional; any other character outside the alphabet is refused."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    text = "".join(text.split()).rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "'image' is not valid base64") from None


def _error_detail(errors: Iterable[dict]) -> list[dict]:
    """Where and why, without the input: it may be large, or not encodable as JSON."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


def describe(config: ServeConfig, predictor: Predictor) -> Metadata:
    """What is served. An .onnx file names its run in the record export wrote beside it."""
    target = Path(config.run)
    if target.suffix == ".onnx":
        run_dir, accuracy = runs.export_record(target)
    else:
        run_dir, accuracy = target, None
    run = runs.open_run(run_dir) if run_dir and (run_dir / runs.CONFIG).is_file() else None
    if accuracy is None and run is not None:
        accuracy = run.metrics["test_accuracy"]
    card = run.path / runs.MODEL_CARD if run else None
    # Names only: the server's own paths are no business of its clients.
    return Metadata(
        run=run_dir.name if run_dir else None,
        preset=run.preset if run else None,
        model_file=Path(predictor.source).name,
        engine=predictor.engine,
        test_accuracy=accuracy,
        input_shape=list(IMAGE_SHAPE),
        model_card=card.read_text() if card and card.is_file() else None,
    )

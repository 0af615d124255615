"""The HTTP API and the drawing page: create_app(config) -> FastAPI; serve(config) runs it.

The model loads once, in the lifespan; one inference thread runs it on the requests'
images, batched (mnistlab.batcher). The predictor is a dependency that tests override.
Routes are plain `def` (FastAPI runs them in its thread pool, off the event loop); only
reading the request body is async.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import functools
import gc
import hashlib
import importlib.resources
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from swagger_ui_bundle import swagger_ui_path
from threadpoolctl import threadpool_limits
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mnistlab import images, runs, segment
from mnistlab.batcher import Batcher
from mnistlab.config import MAX_DIGITS, ServeConfig
from mnistlab.data import IMAGE_SHAPE
from mnistlab.errors import UserError
from mnistlab.predictor import Predictor
from mnistlab.reader import Reader, is_unsure
from mnistlab.schemas import (
    Metadata,
    PredictJSON,
    PredictResponse,
    ReadJSON,
    ReadResponse,
    TFServingRequest,
    TFServingResponse,
)

logger = logging.getLogger("uvicorn.error")

# Environment variable through which `mnistlab serve` hands its config to uvicorn workers.
CONFIG_ENV = "MNISTLAB_SERVE_CONFIG"
DOCS_ASSETS = "/docs-assets"
# A request's head: request line and headers together, and the number of headers (as
# nginx's large_client_header_buffers and Node's max header size, in spirit).
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
HEAD_LIMIT_DETAIL = (
    f"request headers over the limit ({MAX_HEADER_BYTES:,} bytes, {MAX_HEADERS} headers)"
)
# After a 431, how long the rest of the client's head is read and dropped before closing.
LINGER_SECONDS = 1.0
# Only the page's own scripts and styles run; inline ones are allowed by their hash.
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


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
        app.state.reader = Reader(batcher)
        app.state.metadata = _metadata(config, predictor)
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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, which may be a whole batch, or a NaN
        # that JSON cannot encode (a 500).
        return JSONResponse({"detail": _error_detail(error.errors())}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, error: ClientDisconnect) -> Response:
        logger.warning("client disconnected before its request arrived: %s", request.url.path)
        return Response(status_code=400)  # nobody is there to read it

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return _with_csp(
            get_swagger_ui_html(
                openapi_url=app.openapi_url,
                title=f"{app.title} API",
                swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            )
        )

    drawing_page = importlib.resources.files("mnistlab").joinpath("static/index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return _with_csp(HTMLResponse(drawing_page))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata", response_model=Metadata)
    def metadata(request: Request) -> Metadata:
        return request.app.state.metadata

    @app.post("/predict", response_model=PredictResponse, openapi_extra=_image_body(PredictJSON))
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

    @app.post("/read", response_model=ReadResponse, openapi_extra=_image_body(ReadJSON))
    def read(
        gray: GrayInput,
        reader: ReaderDep,
        length: Annotated[int | None, Query(ge=1, le=MAX_DIGITS)] = None,
        min_confidence: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    ) -> Response:
        """The number written in the image: its digits, boxes and probabilities."""
        try:
            reading = reader.read(gray, length)
        except segment.SegmentError as e:
            raise HTTPException(422, str(e)) from None
        record = reading.as_record()
        record["unsure"] = is_unsure(reading.confidence, min_confidence)
        return Response(json.dumps(record), media_type="application/json")

    @app.post("/v1/models/mnist:predict", response_model=TFServingResponse)
    def tf_serving_predict(body: TFServingRequest, predictor: PredictorDep) -> Response:
        # Instances may mix the 28x28 and the flat 784 layouts.
        batch = np.stack([np.asarray(i, np.float32).reshape(IMAGE_SHAPE) for i in body.instances])
        answer = TFServingResponse(predictions=predictor.predict_proba(batch).tolist())
        return Response(answer.model_dump_json(), media_type="application/json")

    return app


def serve(config: ServeConfig) -> None:
    """Run the app under uvicorn until interrupted, with the time limits the README gives."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    # Fail here, in one line, rather than with a traceback in each worker's start-up.
    _metadata(config, Predictor.load(Path(config.run), config.model, config.engine))
    _check_free(config.host, config.port)
    os.environ[CONFIG_ENV] = json.dumps(config.to_dict())  # read by each worker's app factory
    threading.Thread(target=_announce, args=(config,), daemon=True).start()
    log_config = copy.deepcopy(LOGGING_CONFIG)
    for name, logger in log_config["loggers"].items():  # warnings only, but the access log
        access = name == "uvicorn.access" and config.access_log
        logger["level"] = "INFO" if access else "WARNING"
    uvicorn.run(
        "mnistlab.server:create_app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        http=RequestDeadline,
        timeout_keep_alive=config.keep_alive_seconds,
        log_config=log_config,
        access_log=config.access_log,
    )


def _check_free(host: str, port: int) -> None:
    """A port another server holds is a clear error now, not uvicorn's after start-up (and
    not an announcement of the other server, whose /health would answer)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"cannot listen on {host!r}: {e.strerror}") from e
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            raise UserError(
                f"cannot listen on {host}:{port}: {e.strerror}; choose another --port"
            ) from e


def _announce(config: ServeConfig) -> None:
    """Say where the page and the docs are once the server answers (a worker has started
    and loaded its model): uvicorn's own start-up lines are hidden with its info logs."""
    loopback = config.host in ("127.0.0.1", "localhost", "::1")
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
    base = f"http://{f'[{local}]' if ':' in local else local}:{config.port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no HTTP_PROXY
    while True:
        try:
            direct.open(f"{base}/health", timeout=2).close()
            break
        except OSError:
            time.sleep(0.2)
    print(f"mnistlab: serving {config.run} ({config.workers} worker(s))", flush=True)
    print(f"  drawing page  {base}/", flush=True)
    print(f"  API docs      {base}/docs", flush=True)
    if not loopback:
        print(f"  listening on {config.host}: reachable from other machines, with no "
              "authentication; Ctrl+C stops it", flush=True)  # fmt: skip
    else:
        print("  this machine only (--host 0.0.0.0 exposes it); Ctrl+C stops it", flush=True)


def create_app_from_env() -> FastAPI:
    """The app for uvicorn's --factory, configured by `mnistlab serve` through the env."""
    return create_app(_config_from_env())


class RequestDeadline(HttpToolsProtocol):
    """uvicorn's HTTP protocol, with two limits it lacks.

    A request must arrive whole (headers and body) within the configured seconds of its
    first byte or of the connection, else the connection is closed: uvicorn times out only
    idle keep-alive connections, so a client that sends nothing, or a byte a minute, would
    hold its socket forever. And a request's head (request line and headers) has at most
    MAX_HEADER_BYTES and MAX_HEADERS, else it is answered 431: httptools keeps a header
    whole in memory however long it is.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._seconds = _request_timeout()
        self._head_bytes = self._header_count = 0
        self._in_head = True  # the current request's head is still arriving
        self._refused = False  # its head was too large: answered 431, the rest is dropped

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        in_head = self._in_head
        super().data_received(data)  # at most one socket read: 256 KiB
        if in_head and self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._refused = True
            raise _HeadTooLarge  # stops the parser; it reports a parser error
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # the parser error that on_header raised
            self._refused = False
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        """Answer 431 and end the connection; what the client still sends is read and
        dropped for a moment, so that it gets the answer rather than a reset."""
        self._refused = True
        self.logger.warning("request headers over the limit: answered 431")
        body = json.dumps({"detail": HEAD_LIMIT_DETAIL}).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self._disarm()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._in_head, self._head_bytes, self._header_count = True, 0, 0

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._seconds, self.transport.close)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class _HeadTooLarge(Exception):
    pass


@functools.cache
def _request_timeout() -> float:
    return _config_from_env().request_timeout_seconds


def _config_from_env() -> ServeConfig:
    return ServeConfig.from_dict(json.loads(os.environ[CONFIG_ENV]))


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


class SecurityHeaders:
    """Every response says its type is not to be sniffed, and carries a Content-Security-
    Policy (CSP, unless the route set a stricter one for its page)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-content-type-options"] = "nosniff"
                headers.setdefault("content-security-policy", CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """HEAD is answered as GET is (uvicorn leaves out the body): the routes declare GET."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    """The page with a CSP that allows its own files and its inline scripts and styles,
    each by its hash: nothing injected into it runs."""
    html = page.body.decode()
    allowed = {
        kind: " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in re.findall(rf"<{kind}>(.*?)</{kind}>", html, re.DOTALL)
        )
        for kind in ("script", "style")
    }
    page.headers["content-security-policy"] = (
        f"{CSP}; script-src 'self' {allowed['script']}; style-src 'self' {allowed['style']}"
    )
    return page


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


def _metadata(config: ServeConfig, predictor: Predictor) -> Metadata:
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

"""`mnistlab serve`: the app under uvicorn, in worker processes that read their config
from the environment, with an HTTP protocol that bounds how long and how large a
request's arrival may be."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mnistlab.config import ServeConfig
from mnistlab.errors import UserError
from mnistlab.predictor import Predictor
from mnistlab.read import reader_of
from mnistlab.serve.app import create_app, describe
from mnistlab.serve.limits import HEAD_LIMIT_DETAIL, LINGER_SECONDS, MAX_HEADER_BYTES, MAX_HEADERS

# Environment variable through which `mnistlab serve` hands its config to uvicorn workers.
CONFIG_ENV = "MNISTLAB_SERVE_CONFIG"


def serve(config: ServeConfig) -> None:
    """Run the app under uvicorn until interrupted, with the config's time limits."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    # Fail here, in one line, rather than with a traceback in each worker's start-up.
    describe(config, Predictor.load(Path(config.run), config.model, config.engine))
    reader_of(config.run)  # an unfinished or damaged adapted reader, likewise
    _check_free(config.host, config.port)
    os.environ[CONFIG_ENV] = json.dumps(config.to_dict())  # read by each worker's app factory
    threading.Thread(target=_announce, args=(config,), daemon=True).start()
    log_config = copy.deepcopy(LOGGING_CONFIG)
    for name, logger in log_config["loggers"].items():  # warnings only, but the access log
        access = name == "uvicorn.access" and config.access_log
        logger["level"] = "INFO" if access else "WARNING"
    uvicorn.run(
        "mnistlab.serve:create_app_from_env",
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
        self._parsed_bytes = 0  # of the head's request target, header names and values
        self._in_head = True  # the current request's head is still arriving
        self._heads_done = 0  # heads completed on this connection
        self._refused = False  # its head was too large: answered 431, the rest is dropped

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        in_head, heads = self._in_head, self._heads_done
        super().data_received(data)  # at most one socket read: 256 KiB
        # A read counts here only if it lies within one head: one that completed the head
        # holds body bytes too (on_header counts the head it parses).
        if in_head and heads == self._heads_done and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        self._check_head()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._parsed_bytes += len(name) + len(value)
        self._check_head()
        super().on_header(name, value)

    def _check_head(self) -> None:
        """The head as parsed so far: within a read that also holds its end (and a body),
        data_received cannot tell its size."""
        if self._header_count > MAX_HEADERS or self._parsed_bytes > MAX_HEADER_BYTES:
            self._refused = True
            raise _HeadTooLarge  # stops the parser; it reports a parser error

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
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
        self._parsed_bytes = 0

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

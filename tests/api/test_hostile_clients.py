"""A real server on loopback against clients that break the rules: endless or countless
headers, requests cut off half-way, HEAD, and what every response must carry."""

import base64
import io
import socket
import time
import urllib.request

import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab.config import ServeConfig
from mnistlab.serve import MAX_HEADER_BYTES, MAX_HEADERS, create_app

# Two clients each sending this much header: the server used to keep it all.
HUGE_HEADER = 30_000_000
CHUNK = 1_000_000


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _server_process(port: int) -> psutil.Process:
    (pid,) = {c.pid for c in psutil.net_connections("tcp")
              if c.laddr.port == port and c.status == psutil.CONN_LISTEN}  # fmt: skip
    return psutil.Process(pid)


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture(scope="module")
def server(tiny_runs, served_on_loopback):
    with served_on_loopback(tiny_runs[0]) as url:
        yield url


@pytest.mark.parametrize(
    "head",
    [b"X-Long: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n",
     b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))],
    ids=["one-long-header", "too-many-headers"],
)  # fmt: skip
def test_a_head_over_the_limits_is_a_431_with_a_reason(server, head):
    with socket.create_connection(("127.0.0.1", _port(server))) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"detail": "request headers over the limit' in answer
    with urllib.request.urlopen(f"{server}/health", timeout=5) as ok:
        assert ok.status == 200


def test_a_whole_request_larger_than_the_head_limit_in_one_read_is_served(server):
    """A request whose head and body reach the server in one socket read was counted
    whole as head: an upload of 64 to 256 KiB (a cheque's scan) was answered 431."""
    body = b"{" + b" " * (MAX_HEADER_BYTES + 5000) + b"}"
    with socket.create_connection(("127.0.0.1", _port(server))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 4") and not answer.startswith(b"HTTP/1.1 431 "), answer
    assert b"request headers over the limit" not in answer


def test_endless_headers_leave_the_servers_memory_flat(server):
    process = _server_process(_port(server))
    before = process.memory_info().rss

    def flood() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", _port(server)))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        return sock

    socks = [flood(), flood()]
    sent = 0
    try:
        while sent < HUGE_HEADER:
            for sock in socks:
                sock.sendall(b"a" * CHUNK)
            sent += CHUNK
    except OSError:  # the server answered 431 and closed: the rest is refused
        pass
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    # It rose by 290 MB for two 100 MB headers, and stayed up.
    assert process.memory_info().rss - before < 20_000_000
    with urllib.request.urlopen(f"{server}/health", timeout=5) as ok:
        assert ok.status == 200


def test_a_client_gone_mid_body_is_one_log_line(tiny_runs, served_on_loopback, tmp_path):
    """Uvicorn logged 'Exception in ASGI application' and a 30-line traceback."""
    log = tmp_path / "serve.log"
    with served_on_loopback(tiny_runs[0], log=log) as url:
        for route in ("/predict", "/read"):
            with socket.create_connection(("127.0.0.1", _port(url))) as sock:
                sock.sendall(
                    f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 100000\r\n\r\n{".encode()
                )
                time.sleep(0.3)
        time.sleep(1)
        with urllib.request.urlopen(f"{url}/health", timeout=5) as ok:
            assert ok.status == 200
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text
    assert text.count("client disconnected before its request arrived") == 2


@pytest.fixture(scope="module")
def client(tiny_runs):
    with TestClient(create_app(ServeConfig(run=str(tiny_runs[0])))) as client:
        yield client


def test_head_is_answered_as_get(client):
    for path in ("/", "/health", "/metadata", "/docs"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize("path", ["/", "/docs", "/health", "/metadata", "/openapi.json"])
def test_every_response_forbids_sniffing_and_foreign_scripts(client, path):
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    for kind in ("script-src", "style-src"):
        # Only this origin's files and the page's own inline blocks, by hash.
        assert all(s == "'self'" or s.startswith("'sha256-") for s in policy.get(kind, "").split())
    assert "unsafe-inline" not in response.headers["content-security-policy"]


def test_the_pages_inline_scripts_are_allowed_by_hash(client):
    import hashlib
    import re

    for path in ("/", "/docs"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
        assert scripts, path
        for body in scripts:
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy


def _png_b64(mnist) -> tuple[str, int]:
    """A test digit as base64 that ends in '=' padding, and its label."""
    for i in range(100):
        buffer = io.BytesIO()
        Image.fromarray(255 - mnist.x_test[i]).save(buffer, format="PNG")
        if len(buffer.getvalue()) % 3:
            return base64.b64encode(buffer.getvalue()).decode(), int(mnist.y_test[i])
    raise AssertionError("no test digit's PNG needs padding")


@pytest.mark.parametrize(
    "shape",
    [lambda t: "\n".join(t[i : i + 76] for i in range(0, len(t), 76)),  # MIME's lines
     lambda t: t.rstrip("="),
     lambda t: " " + t + "\r\n"],
    ids=["line-breaks", "no-padding", "spaces"],
)  # fmt: skip
def test_base64_is_taken_as_the_standard_decoders_take_it(client, mnist, shape):
    text, label = _png_b64(mnist)
    assert text.endswith("=") and shape(text) != text
    expected = client.post("/predict", json={"image": text}).json()["digit"]
    response = client.post("/predict", json={"image": shape(text)})
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == expected == label


def test_base64_with_other_characters_is_still_refused(client, mnist):
    response = client.post("/predict", json={"image": "*" + _png_b64(mnist)[0]})
    assert response.status_code == 400
    assert response.json()["detail"] == "'image' is not valid base64"


def test_noise_is_no_digit(client):
    noise = np.random.default_rng(0).integers(0, 256, (100, 300), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    # As an image with no digit in it (400) and a page with no number on it (422).
    for route, status in (("/predict", 400), ("/read", 422)):
        response = client.post(route, files={"file": ("n.png", buffer.getvalue())})
        assert response.status_code == status, (route, response.text)
        assert "no digit-like ink" in response.json()["detail"]

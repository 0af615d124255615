"""Load on `mnistlab serve` from a second process on loopback, and the single-image paths.

Prints, from one run:
  - microseconds per single-image prediction in-process: the Predictor (NumPy fast path
    for a Dense model, the compiled Keras predict function otherwise), calling the Keras
    model directly, and model.predict;
  - for each --max-batch (default 1 and 256: one model call per request, serialised by
    the Predictor's lock, against the inference thread that merges concurrent requests)
    and concurrency 1 and 16: requests per second, p50 and p99 latency and errors of
    single-image JSON requests to POST /predict, driven by Debian's `wrk` (a C load
    generator, so the client does not compete with the server for the 2 cores), for
    --duration seconds each, and the ratio of the two at concurrency 16;
  - the server's RSS (all its processes) after the load.
Targets: p99 < 10 ms at concurrency 1, >= 1,000 requests/s at 16, no errors, RSS < 1 GiB.

With --engine onnx the server runs the run's ONNX export (`mnistlab export RUN`) in ONNX
Runtime, without Keras or JAX: compare the two RSS figures.

Usage: python benchmarks/serve_load.py RUN [--engine keras|onnx] [--workers 1] [--duration 10]
                                          [--max-batch 1 256]
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from pathlib import Path

from mnistlab.data import load_mnist, scale


def single_image_paths(run: str, image) -> dict[str, float]:
    """Microseconds per call for one 28x28 image, by three routes."""
    from mnistlab.predictor import Predictor

    predictor = Predictor.from_run(run)
    x = scale(image)[None]
    onnx = (
        Predictor.from_run(run, engine="onnx")
        if Path(run, "exports/final.onnx").is_file()
        else None
    )
    routes = {
        "Predictor.predict_proba": lambda: predictor.predict_proba(x),
        **({"Predictor, ONNX Runtime": lambda: onnx.predict_proba(x)} if onnx else {}),
        "model(x) (Keras call)": lambda: predictor.model(x, training=False),
        "model.predict(x)": lambda: predictor.model.predict(x, verbose=0),
    }
    timings = {}
    for name, call in routes.items():
        call()  # compile or warm up
        number = 20 if "predict(" in name else 200
        timings[name] = min(timeit.repeat(call, number=number, repeat=3)) / number * 1e6
    return timings


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), MiB."""
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for p in pids:
        status = Path(f"/proc/{p}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    return total / 1024


def wrk(url: str, body: str, connections: int, duration: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", script.name, f"{url}/predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)

    def latency_ms(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(map(int, socket_errors.groups())) if socket_errors else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a finished run folder")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--engine", choices=("keras", "onnx"), default="keras")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load level")
    parser.add_argument("--data", default=None, help="mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1, 256])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk: apt-get install wrk")
    os.environ.setdefault("KERAS_BACKEND", "jax")

    image = load_mnist(args.data).x_test[0]
    for name, micros in single_image_paths(args.run, image).items():
        print(f"single image, {name}: {micros:.0f} us")
    body = json.dumps({"pixels": scale(image).round(4).tolist()})
    busy = {}
    for max_batch in args.max_batch:
        for connections, r in load(args, max_batch, body).items():
            print(f"max-batch {max_batch:3d}, concurrency {connections:2d}: {r['rps']:.0f} "
                  f"requests/s ({r['requests']} in {args.duration} s), p50 {r['p50']:.2f} ms, "
                  f"p99 {r['p99']:.2f} ms, errors {r['errors']}")  # fmt: skip
            busy[max_batch] = r["rps"]
    if len(busy) > 1:
        first, *_, last = busy
        print(
            f"concurrency 16, max-batch {last} / max-batch {first}: "
            f"{busy[last] / busy[first]:.2f}x requests/s"
        )


def load(args, max_batch: int, body: str) -> dict[int, dict[str, float]]:
    """Start a server with this --max-batch, load it at concurrency 1 and 16, stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", args.run, "--port", str(port),
         "--workers", str(args.workers), "--engine", args.engine,
         "--max-batch", str(max_batch)]
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        wrk(url, body, 4, 2)  # warm-up
        results = {connections: wrk(url, body, connections, args.duration)
                   for connections in (1, 16)}  # fmt: skip
        print(f"server RSS ({args.workers} worker(s), engine {args.engine}, max-batch "
              f"{max_batch}): {rss_mib(server.pid):.0f} MiB")  # fmt: skip
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

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

With --protocols the server (--max-batch 256) is loaded at concurrency 16 with the same
digit through POST /predict, the Open Inference Protocol's POST /v2/models/mnist/infer
and TensorFlow Serving's :predict, in turn for --rounds rounds; the ratios to /predict
go to benchmarks/results/serve_protocols.json. Target: v2 within 10% of /predict.

Usage: python benchmarks/serve_load.py RUN [--engine keras|onnx] [--workers 1] [--duration 10]
                                          [--max-batch 1 256] [--protocols [--rounds 3]]
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
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


def wrk(
    url: str, body: str, connections: int, duration: int, path: str = "/predict"
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", script.name, f"{url}{path}"],
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
    parser.add_argument("--protocols", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk: apt-get install wrk")
    os.environ.setdefault("KERAS_BACKEND", "jax")

    image = load_mnist(args.data).x_test[0]
    for name, micros in single_image_paths(args.run, image).items():
        print(f"single image, {name}: {micros:.0f} us")
    body = json.dumps({"pixels": scale(image).round(4).tolist()})
    if args.protocols:
        return protocols(args, scale(image).round(4))
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


def protocols(args, digit) -> None:
    """Each protocol's route against /predict, on one server, at concurrency 16."""
    import record

    pixels = digit.tolist()
    routes = {
        "POST /predict": ("/predict", {"pixels": pixels}),
        "POST /v2/models/mnist/infer (JSON, FP32)": ("/v2/models/mnist/infer", {"inputs": [
            {"name": "images", "datatype": "FP32", "shape": [1, 28, 28],
             "data": digit.reshape(-1).tolist()}]}),
        "POST /v1/models/mnist:predict": ("/v1/models/mnist:predict", {"instances": [pixels]}),
    }  # fmt: skip
    measured: dict[str, list[dict]] = {name: [] for name in routes}
    with serving(args, max(args.max_batch)) as (url, _):
        for path, body in routes.values():
            wrk(url, json.dumps(body), 4, 2, path)  # warm-up
        for _ in range(args.rounds):
            for name, (path, body) in routes.items():
                measured[name].append(wrk(url, json.dumps(body), 16, args.duration, path))
                print(name, measured[name][-1])
    base = measured["POST /predict"]
    ratios = {name: [r["rps"] / b["rps"] for r, b in zip(runs, base, strict=True)]
              for name, runs in measured.items()}  # fmt: skip
    rows = [
        [name, f"{statistics.median(r['rps'] for r in runs):,.0f}/s",
         f"{statistics.median(r['p99'] for r in runs):.1f} ms",
         f"{statistics.median(ratios[name]):.2f} ({min(ratios[name]):.2f} to "
         f"{max(ratios[name]):.2f})", sum(r["errors"] for r in runs)]
        for name, runs in measured.items()
    ]  # fmt: skip
    v2 = statistics.median(ratios["POST /v2/models/mnist/infer (JSON, FP32)"])
    table = {
        "title": f"One digit a request at concurrency 16, `{Path(args.run).name}`, --max-batch "
        f"{max(args.max_batch)}: median of {args.rounds} rounds of {args.duration} s",
        "columns": ["route", "requests/s", "p99", "against /predict in the same round",
                    "errors"],
        "rows": rows,
    }  # fmt: skip
    target = {"target": "v2 infer within 10% of /predict at concurrency 16",
              "measured": f"{v2:.2f}x", "met": v2 >= 0.9}  # fmt: skip
    record.write("serve_protocols", [table], [target])


@contextlib.contextmanager
def serving(args, max_batch: int):
    """`mnistlab serve` with this --max-batch on a free loopback port: its URL."""
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
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def load(args, max_batch: int, body: str) -> dict[int, dict[str, float]]:
    """Start a server with this --max-batch, load it at concurrency 1 and 16, stop it."""
    with serving(args, max_batch) as (url, server):
        wrk(url, body, 4, 2)  # warm-up
        results = {connections: wrk(url, body, connections, args.duration)
                   for connections in (1, 16)}  # fmt: skip
        print(f"server RSS ({args.workers} worker(s), engine {args.engine}, max-batch "
              f"{max_batch}): {rss_mib(server.pid):.0f} MiB")  # fmt: skip
        return results


if __name__ == "__main__":
    main()

"""The HTTP API and the drawing page (FastAPI), and `mnistlab serve` (uvicorn)."""

from mnistlab.serve.app import create_app, get_predictor
from mnistlab.serve.limits import MAX_HEADER_BYTES, MAX_HEADERS
from mnistlab.serve.server import create_app_from_env, serve

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "create_app",
    "create_app_from_env",
    "get_predictor",
    "serve",
]

"""mnistlab: the MNIST deep-MLP notebook as software: train, evaluate, tune, predict, serve.

    import mnistlab
    run = mnistlab.train("deep-mlp", epochs=3)
    mnistlab.evaluate(run).metrics["accuracy"]

The functions load on first use (from mnistlab.api), so importing the package loads
neither Keras nor anything else heavy.
"""

API = (
    "train", "open_run", "evaluate", "predict", "read_numbers", "adapt", "read_dataset",
    "predict_dataset",
)  # fmt: skip
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name == "__version__":  # pyproject.toml's, as installed: one place to change it
        from importlib.metadata import version

        return version("mnistlab")
    if name in API:
        from mnistlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")

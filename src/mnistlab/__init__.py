"""mnistlab: the MNIST deep-MLP notebook as software: train, evaluate, tune, predict, serve."""

__version__ = "0.1.0"

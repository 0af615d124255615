"""Hyperparameter search with Optuna over a preset's TrainConfig: the space searched,
the study and its storage, the worker processes, and TensorBoard's HParams view."""

from mnistlab.tune.space import SPACES, base_config, config_from_params, suggest_config
from mnistlab.tune.study import (
    STUDY_JSON,
    TuneError,
    best_config,
    best_trial,
    format_params,
    load_study,
    open_study,
    top_trials,
    trial_line,
)
from mnistlab.tune.workers import Search, local_jobs, run_study, search

__all__ = [
    "SPACES",
    "STUDY_JSON",
    "Search",
    "TuneError",
    "base_config",
    "best_config",
    "best_trial",
    "config_from_params",
    "format_params",
    "load_study",
    "local_jobs",
    "open_study",
    "run_study",
    "search",
    "suggest_config",
    "top_trials",
    "trial_line",
]

"""What a run is worth, shown: its evaluation (metrics, figures, report.html, model
card), comparisons of runs, and the figures and HTML pages they are made of.

The evaluation's names load on first use: `from mnistlab.report import plots` (show-data,
tune) then costs matplotlib alone, not the predictor, the reader and scikit-learn too.
"""

import importlib
import typing

if typing.TYPE_CHECKING:
    from mnistlab.report.evaluation import (
        STRING_SEED,
        Evaluation,
        compare_runs,
        evaluate_run,
        judge_documents,
        read_documents,
        read_labelled,
        read_strings,
    )

__all__ = [
    "STRING_SEED",
    "Evaluation",
    "compare_runs",
    "evaluate_run",
    "judge_documents",
    "read_documents",
    "read_labelled",
    "read_strings",
]


def __getattr__(name: str) -> typing.Any:
    if name in __all__:
        return getattr(importlib.import_module("mnistlab.report.evaluation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

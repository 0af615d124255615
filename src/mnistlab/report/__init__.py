"""What a run is worth, shown: its evaluation (metrics, figures, report.html, model
card), comparisons of runs, and the figures and HTML pages they are made of."""

from mnistlab.report.evaluation import (
    STRING_SEED,
    Evaluation,
    compare_runs,
    evaluate_run,
    read_strings,
)

__all__ = ["STRING_SEED", "Evaluation", "compare_runs", "evaluate_run", "read_strings"]

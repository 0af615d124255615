"""The time-to-accuracy benchmark's clock: probes' seconds must not count as training."""

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "time_to_accuracy.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("time_to_accuracy", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_epoch_s_seconds_leave_out_earlier_probes_but_not_its_own_training():
    # Epoch 1 ends at 10 s, its probe runs to 12 s; epoch 2 ends at 20 s, probed to 21 s.
    times = iter([10.0, 10.0, 12.0, 20.0, 20.0, 21.0, 30.0])
    clock = load_benchmark().TrainingClock(0.0, now=lambda: next(times))
    seen = []
    for _ in range(2):
        seen.append(clock.seconds())
        with clock.paused():
            pass
    seen.append(clock.seconds())
    assert seen == [10.0, 18.0, 27.0]

"""The learning rate each --lr-schedule gives, step by step."""

import numpy as np
import pytest

from mnistlab.config import TrainConfig
from mnistlab.training import learning_rate

STEPS_PER_EPOCH, EPOCHS, PEAK = 100, 10, 3e-3
TOTAL = STEPS_PER_EPOCH * EPOCHS


def rates(schedule: str, steps) -> np.ndarray:
    config = TrainConfig(lr_schedule=schedule, epochs=EPOCHS, learning_rate=PEAK)
    lr = learning_rate(config, STEPS_PER_EPOCH)
    return np.array([float(lr(step)) for step in steps])


@pytest.mark.parametrize("schedule", ["constant", "plateau"])
def test_constant_and_plateau_start_as_a_plain_rate(schedule):
    config = TrainConfig(lr_schedule=schedule, learning_rate=PEAK)
    assert learning_rate(config, STEPS_PER_EPOCH) == PEAK


def test_cosine_decays_from_the_peak_to_one_percent():
    start, middle, end = rates("cosine", [0, TOTAL // 2, TOTAL])
    assert start == pytest.approx(PEAK)
    assert middle == pytest.approx(PEAK * (0.01 + 0.99 * 0.5))
    assert end == pytest.approx(PEAK * 0.01)


def test_onecycle_warms_up_for_a_fifth_then_decays():
    warmup = TOTAL // 5
    values = rates("onecycle", range(0, TOTAL + 1, 50))
    start, peak, end = rates("onecycle", [0, warmup, TOTAL])
    assert start == pytest.approx(PEAK / 25)
    assert peak == pytest.approx(PEAK)
    assert end == pytest.approx(PEAK * 0.01)
    rising, falling = values[: warmup // 50 + 1], values[warmup // 50 :]
    assert (np.diff(rising) > 0).all() and (np.diff(falling) < 0).all()

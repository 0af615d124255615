"""tune.search: the study's records, then retrain-and-compare, with scripted trials and
a real (tiny) retraining on real MNIST."""

import json

import pytest

from mnistlab import runs, tune
from mnistlab.config import TuneConfig
from mnistlab.tune import study as tune_study
from mnistlab.tune import workers as tune_workers

# Trial 1 is the best; the trials themselves never train.
CURVES = [[0.90, 0.91], [0.93, 0.97], [0.92, 0.92]]


@pytest.fixture
def scripted(monkeypatch):
    def fake(config, data, on_epoch_end):
        curve = CURVES[fake.calls]
        fake.calls += 1
        history = [{"val_accuracy": v, "val_loss": 1 - v} for v in curve]
        for epoch, logs in enumerate(history):
            on_epoch_end(epoch, logs)
        return history

    fake.calls = 0
    monkeypatch.setattr(tune_workers, "fit_and_validate", fake)
    return fake


def test_search_records_the_study_then_trains_and_compares_the_best(tmp_path, mnist, scripted):
    config = TuneConfig(trials=3, epochs=1, limit=1000, pruner="none", sampler="random", seed=0,
                        jobs=1)  # fmt: skip
    done = tune.search(config, mnist, tmp_path, progress=False)

    assert scripted.calls == 3
    record = json.loads((done.folder / tune.STUDY_JSON).read_text())
    assert record == done.record
    assert [t["value"] for t in record["trials"]] == [0.91, 0.97, 0.92]
    assert [t["number"] for t in tune.top_trials(record, 2)] == [1, 2]
    assert (done.folder / tune_study.COMPARE_HTML).is_file()

    # The tuned run is the best trial's configuration, trained for real and tested.
    assert done.tuned.config == tune.best_config(done.study)
    assert done.tuned.config.hidden_units == tuple(
        done.study.trials[1].params[f"units_{i}"]
        for i in range(done.study.trials[1].params["n_layers"])
    )
    assert done.reference.config == tune.base_config(config)
    rows = {row["run"]: row for row in done.comparison}
    assert rows[done.tuned.name]["test accuracy"] == round(done.tuned.metrics["test_accuracy"], 4)
    assert rows[done.reference.name]["test accuracy"] == round(
        done.reference.metrics["test_accuracy"], 4
    )


def test_a_second_search_reuses_the_reference_run_and_only_searches_when_asked(
    tmp_path, mnist, scripted
):
    config = TuneConfig(trials=3, epochs=1, limit=1000, pruner="none", sampler="random", seed=0,
                        jobs=1)  # fmt: skip
    first = tune.search(config, mnist, tmp_path, progress=False)
    again = tune.search(config, mnist, tmp_path, progress=False)
    assert scripted.calls == 3  # the study was done: no trial ran again
    assert again.reference.path == first.reference.path  # found, not trained again
    only = tune.search(config, mnist, tmp_path, progress=False, retrain=False)
    assert (only.tuned, only.reference, only.comparison) == (None, None, [])
    presets = sorted(r.preset for r in runs.list_runs(tmp_path)[0])
    assert presets == ["deep-mlp", "deep-mlp-tuned", "deep-mlp-tuned"]

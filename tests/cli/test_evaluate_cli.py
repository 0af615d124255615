"""evaluate, compare, runs, show-data and summary from the command line."""

import io
import os
import re
import shutil

import numpy as np
from PIL import Image

from mnistlab import runs
from mnistlab.data import load_mnist


def test_evaluate_prints_the_report_and_writes_everything(cli, tiny_runs):
    run_dir = tiny_runs[0]
    result = cli("evaluate", run_dir)
    assert result.returncode == 0, result.stderr
    evaluation = runs.read_json(run_dir / runs.EVALUATION)
    accuracy = evaluation["metrics"]["accuracy"]
    assert re.search(rf"^ +accuracy +{accuracy:.4f} +loss ", result.stdout, re.M)
    assert result.stdout.strip().endswith(f"report: {run_dir / runs.REPORT}")
    assert len(list((run_dir / runs.FIGURES).glob("*.png"))) == 5
    assert result.stderr == ""  # progress is for terminals, not for pipes and logs


def test_evaluate_shows_its_steps_on_a_terminal(terminal, tiny_runs):
    text = terminal("evaluate", tiny_runs[0], "--strings", 40)
    assert re.search(r"measuring on 10,000 digits \.\.\. done \(\d+\.\d s\)", text), text
    assert "writing the figures and report.html ... done" in text
    assert re.search(r"\d+/40 \[", text)  # the string benchmark's bar


def test_evaluate_on_other_digits_writes_beside_not_over(cli, tiny_runs, tmp_path):
    run_dir = tiny_runs[1]
    mnist = load_mnist()
    other = tmp_path / "other-digits.npz"
    np.savez(other, x=mnist.x_test[:300], y=mnist.y_test[:300])
    result = cli("evaluate", run_dir, "--data", other, "--model", "best")
    assert result.returncode == 0, result.stderr
    out = run_dir / runs.EVALUATIONS / "best-other-digits"
    evaluation = runs.read_json(out / runs.EVALUATION)
    assert evaluation["metrics"]["n"] == 300
    assert evaluation["model"] == "best"
    assert (out / runs.REPORT).is_file()


def test_evaluate_refuses_an_unfinished_or_missing_run(cli, tmp_path):
    unfinished = tmp_path / "unfinished"
    runs.start(unfinished, {"config": {}, "data_sha256": ""})
    result = cli("evaluate", unfinished)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mnistlab: error: {unfinished}: unfinished run (no metrics.json); "
        "run mnistlab train again to finish it"
    )
    assert not (unfinished / runs.EVALUATION).exists()
    result = cli("evaluate", tmp_path / "nothing")
    assert result.returncode == 2
    assert "not a mnistlab run (no config.json)" in result.stderr


def test_evaluate_refuses_digits_that_are_not_28x28(cli, tiny_runs, tmp_path):
    bad = tmp_path / "digits8x8.npz"
    np.savez(bad, x=np.zeros((5, 8, 8), np.uint8), y=np.zeros(5, np.uint8))
    result = cli("evaluate", tiny_runs[0], "--data", bad)
    assert result.returncode == 2
    assert "x has shape (5, 8, 8), expected (N, 28, 28)" in result.stderr


def test_compare_prints_a_table_and_writes_the_page(cli, tiny_runs, tmp_path):
    page = tmp_path / "cmp.html"
    result = cli("compare", *tiny_runs, "--out", page)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "model", "parameters", "epochs", "training", "seconds",
                                "test", "accuracy", "test", "loss"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows["deep-mlp"][1:4] == ["deep-mlp", "567434", "2"]
    assert rows["mlp-128"][1:4] == ["mlp-128", "101770", "2"]
    html = page.read_text()
    assert html.count("<img") == 2
    assert "src='http" not in html


def test_runs_lists_finished_runs_newest_first(cli, tiny_runs, tmp_path):
    # Copies with set times: the order must not depend on what other tests rewrote.
    root = tmp_path / "runs"
    for run_dir, finished in zip(tiny_runs, (2_000_000_000, 1_000_000_000), strict=True):
        shutil.copytree(run_dir, root / run_dir.name)
        os.utime(root / run_dir.name / runs.METRICS, (finished, finished))
    runs.start(root / "unfinished", {"config": {"preset": "x"}, "data_sha256": ""})
    result = cli("runs", "--root", root)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert names == [tiny_runs[0].name, tiny_runs[1].name]


def test_show_data_prints_counts_and_draws_25_images(cli, tmp_path):
    result = cli("show-data", "--out", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^train +\(60000, 28, 28\) +\(60000,\) +uint8 +5923 +6742 ", result.stdout, re.M
    )
    assert re.search(
        r"^test +\(10000, 28, 28\) +\(10000,\) +uint8 +980 +1135 ", result.stdout, re.M
    )
    image = Image.open(io.BytesIO((tmp_path / "grid.png").read_bytes()))
    assert (image.format, image.size) == ("PNG", (1100, 1240))


def test_summary_of_a_preset_and_of_a_run(cli, tiny_runs):
    preset = cli("summary", "--preset", "deep-mlp")
    assert preset.returncode == 0, preset.stderr
    assert re.search(r"^hidden_1 +Dense +\(None, 512\) +401,920$", preset.stdout, re.M)
    assert preset.stdout.strip().endswith("total parameters: 567,434")
    run = cli("summary", tiny_runs[1])
    assert run.stdout.strip().endswith("total parameters: 101,770")
    assert cli("summary").returncode == 2  # neither a run nor a preset


def test_show_data_augmented_differs_from_the_plain_grid(cli, tmp_path):
    plain = cli("show-data", "--out", tmp_path / "plain.png")
    augmented = cli("show-data", "--augment", "--seed", 3, "--out", tmp_path / "aug.png")
    again = cli("show-data", "--augment", "--seed", 3, "--out", tmp_path / "again.png")
    assert plain.returncode == augmented.returncode == again.returncode == 0
    assert (tmp_path / "aug.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    assert (tmp_path / "aug.png").read_bytes() != (tmp_path / "plain.png").read_bytes()


def test_show_data_draws_milder_distortions_and_refuses_a_bad_strength(cli, tmp_path):
    full = cli("show-data", "--augment", "--seed", 3, "--out", tmp_path / "full.png")
    mild = cli(
        "show-data",
        "--augment",
        "--augment-strength",
        0.5,
        "--seed",
        3,
        "--out",
        tmp_path / "mild.png",
    )
    assert full.returncode == mild.returncode == 0
    assert (tmp_path / "mild.png").read_bytes() != (tmp_path / "full.png").read_bytes()
    for bad, message in [
        (("--augment", "--augment-strength", 0), "--augment-strength must be in (0, 1]"),
        (("--augment-strength", 0.5), "--augment-strength needs augment (--augment"),
    ]:
        result = cli("show-data", *bad, "--out", tmp_path / "bad.png")
        assert result.returncode == 2
        assert message in result.stderr
    assert not (tmp_path / "bad.png").exists()


def test_evaluate_writes_a_model_card_whose_command_reproduces_the_run(cli, tiny_runs, tmp_path):
    import shlex

    from fastapi.testclient import TestClient

    from mnistlab.config import ServeConfig
    from mnistlab.serve import create_app

    run_dir = tiny_runs[0]
    assert cli("evaluate", run_dir).returncode == 0
    card = (run_dir / runs.MODEL_CARD).read_text()
    sections = re.findall(r"^## (.+)$", card, re.M)
    assert sections == ["Model details", "Intended use", "Factors", "Metrics", "Training data",
                        "Evaluation data", "Quantitative analyses", "Ethical considerations",
                        "Caveats and recommendations", "How to reproduce"]  # fmt: skip
    evaluation = runs.read_json(run_dir / runs.EVALUATION)["metrics"]
    record = runs.read_json(run_dir / runs.CONFIG)
    assert f"| MNIST test | 10,000 | {evaluation['accuracy']:.4f} |" in card
    assert re.search(r"^\| scikit-learn digits \| 1,797 \| 0\.\d{4} \|", card, re.M)
    zero = evaluation["per_class"]["0"]
    assert f"| 0 | {zero['precision']:.4f} | {zero['recall']:.4f} |" in card
    assert record["data_sha256"] in card and f"jax {record['jax_version']}" in card
    assert re.search(r"--min-confidence 0\.\d+` the model answers", card)

    (command,) = [line for line in card.splitlines() if line.startswith("mnistlab train")]
    words = shlex.split(command)
    assert words[words.index("--limit") + 1] == "3000" and words[words.index("--epochs") + 1] == "2"
    again = cli(*words[1:], "--quiet", "--run-dir", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    metrics = runs.read_json(tmp_path / "again" / runs.METRICS)
    assert metrics["test_loss"] == runs.read_json(run_dir / runs.METRICS)["test_loss"]

    with TestClient(create_app(ServeConfig(run=str(run_dir)))) as client:
        assert client.get("/metadata").json()["model_card"] == card

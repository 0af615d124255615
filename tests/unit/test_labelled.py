"""Labelled folders (filename,label), what adapt and evaluate --documents read, and the
reader folder an adapted run carries."""

import json
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab import runs
from mnistlab.config import AdaptConfig, ConfigError
from mnistlab.errors import UserError
from mnistlab.read import MIN_CONFIDENCE, Reading, labelled, lines, reader_of


@pytest.fixture
def folder(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((20, 40), 200, np.uint8)).save(tmp_path / name)
    return tmp_path


def write(folder, text: str):
    (folder / "labels.csv").write_text(text)
    return folder / "labels.csv"


def test_a_labels_file_gives_paths_and_texts_in_its_order(folder):
    write(folder, "filename,label\nb.png,0042\na.png, 7 \n")
    data = labelled.load(folder)
    assert data.paths == [folder / "b.png", folder / "a.png"]
    assert data.texts == ["0042", "7"] and data.left_out == 0


def test_labels_that_are_not_numbers_are_refused_or_left_out(folder):
    write(folder, "filename,label\na.png,4a\nb.png,12\nc.png,\n")
    with pytest.raises(UserError, match=r"line 2: the label '4a' is not a number"):
        labelled.load(folder)
    data = labelled.load(folder, skip_other=True)
    assert data.texts == ["12"] and data.left_out == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no labels"),
        ("name,text\na.png,1\n", "must name the columns 'filename' and 'label'"),
        ("filename,label\nzzz.png,1\n", "line 2: 'zzz.png': no such file"),
        ("filename,label\nlabels.csv,1\n", "'labels.csv': not an image file"),
        ("filename,label\na.png," + "1" * 65 + "\n", "not a number of 1 to 64 digits"),
        ("filename,label\n\xff\xfe,1\n", None),
    ],
    ids=["empty", "header", "missing-image", "not-an-image", "too-long", "odd-bytes"],
)
def test_a_bad_labels_file_is_one_user_error(folder, text, message):
    path = folder / "labels.csv"
    if message is None:
        path.write_bytes(b"filename,label\n\xff\xfe,1\n")  # not UTF-8
        message = "cannot read the labels file"
    else:
        path.write_text(text)
    with pytest.raises(UserError, match=message):
        labelled.load(folder)


def test_a_missing_folder_or_labels_file(folder):
    with pytest.raises(UserError, match="not a folder"):
        labelled.load(folder / "nope")
    with pytest.raises(UserError, match="cannot read the labels file"):
        labelled.load(folder, folder / "other.csv")


def test_adapt_config_checks_its_fields():
    with pytest.raises(ConfigError, match="hold_out must be in"):
        AdaptConfig(run="r", folder="f", hold_out=1.0)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        AdaptConfig(run="r", folder="f", epochs=0)


def test_a_run_without_a_reader_has_the_shipped_one(tmp_path):
    fitted = reader_of(tmp_path)
    assert fitted.min_confidence == MIN_CONFIDENCE and len(fitted.line_models) == len(lines.WEIGHTS)
    assert fitted.classifier


def test_a_damaged_reader_folder_is_a_run_error(tmp_path):
    folder = tmp_path / runs.READER
    folder.mkdir()
    (folder / runs.READER_RECORD).write_text(json.dumps({"min_confidence": 3}))
    with pytest.raises(runs.RunError, match="no min_confidence in"):
        reader_of(tmp_path)
    (folder / runs.READER_RECORD).write_text(
        json.dumps({"min_confidence": 0.5, "classifier": "yes"})
    )
    with pytest.raises(runs.RunError, match="classifier not true/false"):
        reader_of(tmp_path)
    (folder / runs.READER_RECORD).write_text(json.dumps({"min_confidence": 0.5}))
    with pytest.raises(runs.RunError, match="missing or damaged line model weights"):
        reader_of(tmp_path)


class Sure:
    """A reader whose readings are '1' at the confidences given."""

    def __init__(self, confidences):
        self.confidences = confidences

    def read_many(self, images):
        from mnistlab.read import Reading

        return [Reading("1", c, False, []) for c in self.confidences]


@pytest.mark.parametrize(
    "confidences, texts, threshold, accepted",
    [
        ([0.9999, 0.998, 0.9], ["1", "1", "1"], 0.998, 0.6667),  # not 0.9: the floor
        ([0.9, 0.5], ["1", "1"], MIN_CONFIDENCE, 0.0),  # none that sure: the floor
        ([0.998, 0.5], ["2", "1"], 1.0, 0.0),  # the surest is wrong: accept none
        # The row's own confidence, not rounded: to 6 places it would be 1, accepting none.
        ([0.9999996, 0.995], ["1", "2"], 0.9999996, 0.5),
        # Right only at 1: a threshold of 1 accepts nothing, so none is found.
        ([1.0, 0.995], ["1", "2"], 1.0, 0.0),
    ],
)
def test_an_adapted_threshold_is_never_below_the_default(confidences, texts, threshold, accepted):
    from mnistlab.read.adapt import _measure

    measured = _measure(Sure(confidences), [None] * len(texts), texts, ["f.png"] * len(texts))
    assert measured["threshold"] == threshold and measured["accepted"] == accepted, measured


def test_adapt_names_the_held_out_images_read_surely_and_not_as_labelled(capsys):
    # A label that is not what the image shows is a sure mistake: it raises the threshold.
    from mnistlab import output
    from mnistlab.read.adapt import Adapted, _measure

    texts = ["1", "2", "1", "7", "3"]
    names = ["a.png", "b.png", "c.png", "d.png", "e.png"]
    measured = _measure(Sure([0.9999, 0.998, 0.997, 0.9995, 0.9]), [None] * 5, texts, names)
    assert [m["file"] for m in measured["sure_mistakes"]] == ["d.png", "b.png"]  # surest first
    assert measured["sure_mistakes"][0] == {
        "file": "d.png", "label": "7", "read": "1", "confidence": 0.9995
    }  # fmt: skip
    record = {"held_out": 5, "trained_on": 15, "before": measured, "after": measured,
              "adapted": True, "classifier": True, "line_models_alone": measured,
              "min_confidence": measured["threshold"]}  # fmt: skip
    output.adapted(Adapted(Path("out"), record))
    said = capsys.readouterr().out
    assert "2 held-out images read surely and not as labelled" in said
    assert "  d.png: labelled 7, read 1 (confidence 0.999500)" in said


def test_sure_mistakes_are_the_accepted_readings_not_their_label_surest_first(capsys):
    from mnistlab import output
    from mnistlab.read import Reading, sure_mistakes
    from mnistlab.report import judge_documents

    readings = [Reading(t, c, False, []) for t, c in
                [("12", 0.999), ("7", 0.9999), ("3", 0.9), ("40", 0.995)]]  # fmt: skip
    readings += [None, UserError("no digits found")]
    texts = ["12", "1", "8", "41", "5", "6"]
    names = [f"{k}.png" for k in range(6)]
    mistakes = sure_mistakes(readings, texts, names, 0.99)
    assert [(m["file"], m["label"], m["read"]) for m in mistakes] == [
        ("1.png", "1", "7"), ("3.png", "41", "40")
    ]  # fmt: skip
    assert len(sure_mistakes(readings, texts, names, 0.0)) == 3  # never a reading not made
    data = labelled.Labelled([Path(n) for n in names], texts, 0)
    made = [r if isinstance(r, Reading) else None for r in readings]  # as read_labelled gives
    record = judge_documents(made, data, 0.5, 0.99)
    assert (record["accuracy"], record["no_number"], record["strings_per_second"]) == (1 / 6, 2, 12)
    assert record["default"] == {"threshold": 0.99, "accepted": 0.5, "right": 1 / 3}
    assert record["sure_mistakes"] == mistakes
    # The same readings judged against corrected labels (read_real's second judgement).
    data = labelled.Labelled(data.paths, ["12", "7", *texts[2:]], 0)
    fixed = judge_documents(made, data, 0.5, 0.99)
    assert (fixed["accuracy"], fixed["default"]["right"]) == (2 / 6, 2 / 3)
    assert [m["file"] for m in fixed["sure_mistakes"]] == ["3.png"]
    output.documents_summary(record, "record.json")
    said = capsys.readouterr().out
    assert "2 images accepted and not as labelled" in said
    assert "  1.png: labelled 1, read 7 (confidence 0.999900)" in said
    output.documents_summary({**record, "sure_mistakes": mistakes[:1]}, "record.json")
    assert "\n1 image accepted and not as labelled" in capsys.readouterr().out


def test_adapt_says_when_it_accepts_nothing(tmp_path, capsys):
    from mnistlab import output
    from mnistlab.read.adapt import Adapted

    held = {"accuracy": 0.5, "threshold": 1.0, "accepted": 0.0, "sure_mistakes": []}
    record = {"held_out": 2, "trained_on": 6, "before": held, "after": held, "adapted": True,
              "classifier": True, "line_models_alone": held, "min_confidence": 1.0}  # fmt: skip
    output.adapted(Adapted(tmp_path, record))
    assert "every reading is marked unsure" in capsys.readouterr().out


def test_adapt_says_when_too_few_are_accepted_to_show_99_percent_right(tmp_path, capsys):
    """11 held-out readings accepted, all right, cannot show one mistake in 100: adapt
    says how many it accepts and how many are right, not "99% right"."""
    from mnistlab import output
    from mnistlab.read.adapt import Adapted

    before = {"accuracy": 0.6, "threshold": 0.99, "accepted": 0.05, "sure_mistakes": []}
    after = {"accuracy": 0.825, "threshold": 0.9963, "accepted": 0.275, "sure_mistakes": [],
             "accepted_readings": 11, "accepted_right": 1.0}  # fmt: skip
    record = {"held_out": 40, "trained_on": 120, "before": before, "after": after,
              "adapted": True, "classifier": True, "line_models_alone": after,
              "min_confidence": 0.9963}  # fmt: skip
    output.adapted(Adapted(tmp_path, record))
    said = capsys.readouterr().out
    assert "min_confidence=0.9963: accepts 11 of them (27.5%), 100.0% right" in said
    assert "\ntoo few to show that 99% are right: `evaluate --documents`" in said
    record["held_out"], after["accepted_readings"], after["accepted_right"] = 800, 220, 0.9909
    output.adapted(Adapted(tmp_path, record))
    said = capsys.readouterr().out
    assert "accepts 220 of them (27.5%), 99.1% right" in said and "too few" not in said
    # evaluate --documents' threshold where the accepted are 99% right says so too.
    from mnistlab.read import Reading
    from mnistlab.report import judge_documents

    texts = [str(k) for k in range(150)]
    readings = [Reading(t, 0.999, False, []) for t in texts]
    for n in (1, 3, 150):
        data = labelled.Labelled([Path(f"{t}.png") for t in texts[:n]], texts[:n], 0)
        output.documents_summary(judge_documents(readings[:n], data, 1.0, 0.99), "r")
        said = capsys.readouterr().out
        count = "1 reading" if n == 1 else f"{n} readings"
        assert f"accepted where 99% right: 100.0%, {count} (--min-confidence 0.999)" in said
        assert ("too few to show that 99% are right" in said) is (n < 100)


def test_a_reader_adapted_with_two_line_models_reads_with_its_two(tmp_path):
    """Readers adapted before the third line model shipped name none in reader.json and
    hold two: they read as they were calibrated, with those two."""
    folder = tmp_path / runs.READER
    folder.mkdir()
    for name in lines.WEIGHTS[:2]:
        (folder / name).write_bytes((Path(lines.__file__).parent / name).read_bytes())
    (folder / runs.READER_RECORD).write_text(json.dumps({"min_confidence": 0.5}))
    fitted = reader_of(tmp_path)
    assert [m.weights()["w0"].shape for m in fitted.line_models] == [(3, 3, 1, 32)] * 2
    (folder / runs.READER_RECORD).write_text(
        json.dumps({"min_confidence": 0.5, "line_models": ["../../etc/passwd"]})
    )
    with pytest.raises(runs.RunError, match="damaged, line_models not of"):
        reader_of(tmp_path)


def test_a_confidence_is_at_most_1_and_a_threshold_of_1_accepts_nothing(monkeypatch, capsys):
    """A line model saturated by adapting has float32 frames that sum to a little over 1,
    and the CTC sum over a string's paths passes 1 (on an adapted reader's register cells,
    116 of 697 readings did, and a held-out threshold of 1 accepted them)."""
    from scipy.special import softmax

    from mnistlab.read import Reader, is_unsure
    from mnistlab.report import judge_documents

    logits = np.zeros((12, 11), np.float32)
    logits[:, lines.BLANK] = 20.0
    logits[5] = 0.0
    logits[5, 1 + 5] = 20.0  # a 5 on frame 5, blank on every other
    p = softmax(logits, axis=-1)
    # Its paths' sum in float32 passes 1; a probability is at most 1.
    assert lines.string_probability(p, "5") == 1.0
    sure_5 = np.eye(10, dtype=np.float32)[5]  # the classifier: 5, and 0 for the rest
    digits = [(None, [0, 0, 4, 4], True, lines.digit_probabilities(p, np.array([5])))]
    for threshold in (0.0, 1.0):
        reading = Reader(None, threshold, [None])._reading([p], digits, [sure_5], [])
        assert reading.text == "5" and reading.confidence == 1.0
        assert reading.unsure is (threshold == 1.0)
    assert is_unsure(1.0, 1.0) and not is_unsure(1.0, 0.99)
    # evaluate's "accepted where 99% right" names a threshold that accepts something.
    data = labelled.Labelled([Path("a.png"), Path("b.png")], ["5", "1"], 0)
    record = judge_documents([reading, Reading("2", 0.5, False, [])], data, 1.0, 0.99)
    assert record["at_99"] is None, record["at_99"]
    # So does evaluate --strings' threshold where the accepted are 99.5% right.
    from mnistlab import metrics, output

    strings = metrics.string_metrics(["5", "1"], ["5", "2"], [1.0, 0.5], [False] * 2, 1.0)
    evaluation = types.SimpleNamespace(metrics={}, record={"strings": strings}, folder=Path("r"))
    monkeypatch.setattr(metrics, "format_report", lambda _: "")
    output.evaluation_summary(evaluation, 0.995)
    assert "no threshold makes the accepted 99.5% right" in capsys.readouterr().out

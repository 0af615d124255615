"""The line model's mechanics: CTC decoding with and without a length, and NumPy
inference that equals the Keras model it was folded from."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from mnistlab.read import lines, segment, train_lines


def posteriors(path: list[int], sure: float = 0.9) -> np.ndarray:
    """Per-frame probabilities (T, 11) that favour `path` (class per frame, 0 blank)."""
    p = np.full((len(path), 11), (1 - sure) / 10)
    p[np.arange(len(path)), path] = sure
    return p


def test_decode_merges_repeats_and_splits_at_blanks():
    frames = lines.decode(posteriors([0, 3, 3, 0, 3, 0, 0, 5, 6]))
    assert [list(f) for f in frames] == [[1, 2], [4], [7], [8]]


def brute_force(p: np.ndarray, length: int) -> float:
    """The best path's log probability among those that read `length` digits."""
    best = -np.inf
    for path in itertools.product(range(p.shape[1]), repeat=len(p)):
        collapsed = [c for k, c in enumerate(path) if c and (k == 0 or path[k - 1] != c)]
        if len(collapsed) == length:
            best = max(best, float(np.log(p[np.arange(len(p)), path]).sum()))
    return best


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_decode_with_a_length_finds_the_best_path_of_that_length(length):
    rng = np.random.default_rng(length)
    p = rng.dirichlet(np.ones(4), size=6)  # blank and three digits, six frames
    full = np.zeros((6, 11))
    full[:, :4] = p
    assert len(lines.decode(full + 1e-15, length)) == length
    labels = lines._best_path(np.log(full + 1e-15), length)
    path_logp = float(np.log(p[np.arange(6), labels]).sum())
    assert path_logp == pytest.approx(brute_force(p, length), abs=1e-6)


def test_string_probability_sums_every_path_that_reads_the_string():
    rng = np.random.default_rng(0)
    p = np.zeros((6, 11))
    p[:, :4] = rng.dirichlet(np.ones(4), size=6)  # blank and digits 0, 1, 2; six frames
    total: dict[str, float] = {}
    for path in itertools.product(range(4), repeat=6):
        text = "".join(str(c - 1) for k, c in enumerate(path) if c and (k == 0 or path[k - 1] != c))
        total[text] = total.get(text, 0.0) + float(np.prod(p[np.arange(6), path]))
    for text in ["", "0", "11", "101", "2012", "000", "012210"]:
        assert lines.string_probability(p, text) == pytest.approx(total.get(text, 0.0), abs=1e-12)
    assert sum(lines.string_probability(p, text) for text in total) == pytest.approx(1.0)


def test_decode_refuses_a_length_the_frames_cannot_hold():
    with pytest.raises(segment.SegmentError, match="too little ink for 5 digits"):
        lines.decode(posteriors([0, 1, 0]), 5)


def test_numpy_inference_equals_the_keras_model_it_was_folded_from():
    import keras

    keras.utils.set_random_seed(0)
    model = train_lines.build()
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch norm with statistics that matter
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.weights
            n = gamma.shape[0]
            gamma.assign(rng.uniform(0.5, 1.5, n))
            beta.assign(rng.normal(0, 0.2, n))
            mean.assign(rng.normal(0, 0.2, n))
            variance.assign(rng.uniform(0.5, 2, n))
    # Widths that pad differently; each image's output must not depend on the others.
    images = [rng.random((lines.HEIGHT, 40)), rng.random((lines.HEIGHT, 64))]
    numpy_out = lines.LineModel(train_lines._folded(model))(images)
    for image, out in zip(images, numpy_out, strict=True):
        padded = np.zeros((lines.HEIGHT, lines.padded_width(image.shape[1])))
        padded[:, : image.shape[1]] = image
        logits = model.predict(padded[None, :, :, None], verbose=0)[0]
        logits = logits[: image.shape[1] // lines.STRIDE]
        expected = np.exp(logits - logits.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        assert out.shape == (image.shape[1] // lines.STRIDE, 11)
        np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("name", lines.WEIGHTS)
def test_a_weights_file_loaded_into_keras_folds_back_to_itself(name):
    """Fine-tuning (train_lines --start, adapt) starts from exactly the shipped weights,
    whatever the model's width."""
    shipped = lines.LineModel.load(name)
    model = train_lines.build(True, *shipped.architecture())
    train_lines.load_weights(model, shipped)
    again = train_lines._folded(model)
    original = shipped.weights()
    assert again.keys() == original.keys()
    for name, value in original.items():
        np.testing.assert_array_equal(again[name], value)


def test_a_number_longer_than_the_synthetic_ones_trains_with_every_digit():
    """adapt trains on a user's labels, which may be longer than the synthetic numbers'
    MAX_LABEL digits (a reference or account number): all of them are the target."""
    import keras

    text = "123456789012"
    wide = np.zeros((lines.HEIGHT, 200), np.uint8)
    batches = train_lines._batches(
        [(wide, text), (wide[:, :60], "7")], 16, np.random.default_rng(0), remainder=True
    )
    y = next(y for x, y in batches if x.shape[2] == lines.padded_width(200))
    assert [int(c) - 1 for c in y[0] if c] == [int(c) for c in text]
    assert all(y.shape[1] >= train_lines.MAX_LABEL for _, y in batches)
    model = train_lines.build(folded=True)
    model.compile(keras.optimizers.Adam(1e-3), loss=keras.losses.CTC())
    for x, y in batches:
        assert np.isfinite(model.train_on_batch(x, y))


def test_every_shipped_weights_file_reads_as_float32_and_stays_under_a_mebibyte():
    """lines_wide.npz is stored as float16 (git holds no file over 1 MiB); inference and
    fine-tuning see float32."""
    for name in lines.WEIGHTS:
        path = Path(lines.__file__).with_name(name)
        assert path.stat().st_size < 2**20, name
        model = lines.LineModel.load(name)
        assert all(w.dtype == b.dtype == np.float32 for w, b in model.layers), name

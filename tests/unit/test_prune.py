"""Pruning's mechanics on tiny models: the schedule, masks through training, and the
narrowed rebuild (prune.py). Real prunes of real runs: tests/cli/test_prune_cli.py."""

import dataclasses
import subprocess
import sys
import types

import keras
import numpy as np
import pytest

from mnistlab import prune
from mnistlab.config import TrainConfig
from mnistlab.models import build_model

MLP = TrainConfig(hidden_units=(64, 32), dropout=0.2, steps_per_execution=4)
CONV = TrainConfig(
    preset="cnn", conv_filters=(8, 16), conv_padding="same", hidden_units=(32,),
    batch_norm=True, dropout=0.3,
)  # fmt: skip


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


def test_the_schedule_rises_as_a_cubic_to_the_final_sparsity_and_stays():
    steps = [prune.polynomial_sparsity(t, 0.9, 5) for t in range(8)]
    # s_t = 0.9 (1 - (1 - t/5)^3): fast first, slow near the end (Zhu and Gupta, eq. 1).
    np.testing.assert_allclose(steps, [0, 0.4392, 0.7056, 0.8424, 0.8928, 0.9, 0.9, 0.9])
    assert prune.polynomial_sparsity(2, 0.8, 4, initial=0.5) == pytest.approx(0.8 - 0.3 / 8)


def test_masks_hold_through_training_and_the_saved_model_is_plain_keras(tmp_path):
    keras.utils.set_random_seed(0)
    model = prune._masked(build_model(MLP))
    masked = [layer for layer in model.layers if isinstance(layer, prune._Masked)]
    assert [layer.name for layer in masked] == ["hidden_1", "hidden_2"]  # not the output
    for layer in masked:
        layer.mask_smallest(0.8)
    zeros = [keras.ops.convert_to_numpy(layer.kernel) == 0 for layer in masked]
    assert [z.mean() for z in zeros] == pytest.approx([0.8, 0.8], abs=1e-3)

    x, y = _images(512), np.random.default_rng(1).integers(0, 10, 512)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=4)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)  # 32 Adam steps

    plain = prune._unmasked(model)
    assert not any(isinstance(layer, prune._Masked) for layer in plain.layers)
    for name, was_zero in zip(["hidden_1", "hidden_2"], zeros, strict=True):
        kernel = plain.get_layer(name).get_weights()[0]
        assert np.all(kernel[was_zero] == 0)  # every pruned weight still exactly zero
        assert np.count_nonzero(kernel[~was_zero]) == (~was_zero).sum()  # the rest trained
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    path = tmp_path / "pruned.keras"
    plain.save(path)
    script = f"import keras; m = keras.saving.load_model({str(path)!r}); print(m.count_params())"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr  # no mnistlab needed to load it
    assert int(loaded.stdout) == plain.count_params()


def test_without_the_mask_the_same_training_moves_zeroed_weights():
    # The control for the test above: Adam does move weights merely set to zero.
    keras.utils.set_random_seed(0)
    model = build_model(MLP)
    kernel = model.get_layer("hidden_1").kernel
    zero = np.random.default_rng(2).random(kernel.shape) < 0.8
    kernel.assign(np.where(zero, 0, keras.ops.convert_to_numpy(kernel)))
    x, y = _images(512), np.random.default_rng(1).integers(0, 10, 512)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.count_nonzero(model.get_layer("hidden_1").get_weights()[0][zero]) > 0.5 * zero.sum()


def _names(config):
    names = [f"conv_{i}" for i in range(1, len(config.conv_filters) + 1)]
    return names + [f"hidden_{i}" for i in range(1, len(config.hidden_units) + 1)]


@pytest.mark.parametrize("config", [MLP, CONV], ids=["mlp", "conv-bn"])
def test_a_narrowed_model_keeps_the_outputs_of_the_units_it_keeps(config, tmp_path):
    """Half of each layer's units are made dead (no incoming weights, no bias, no shift):
    the smallest L1 norms. Removing them must change nothing: the kept units' outputs, in
    their order, and the class probabilities."""
    keras.utils.set_random_seed(0)
    before = build_model(config)
    rng = np.random.default_rng(7)
    alive = {}
    for name in _names(config):
        layer = before.get_layer(name)
        weights = layer.get_weights()  # kernel (, bias)
        alive[name] = np.sort(rng.permutation(weights[0].shape[-1])[: weights[0].shape[-1] // 2])
        dead = np.setdiff1d(np.arange(weights[0].shape[-1]), alive[name])
        weights[0][..., dead] = 0
        weights[1:] = [np.where(np.isin(np.arange(len(b)), dead), 0, b + 0.1) for b in weights[1:]]
        layer.set_weights(weights)
        if config.batch_norm:
            bn = before.get_layer(f"{name}_bn")
            gamma, beta, mean, var = bn.get_weights()
            beta, mean = rng.normal(0.2, 0.1, beta.shape), rng.normal(0, 0.1, mean.shape)
            beta[dead], mean[dead] = 0, 0
            bn.set_weights([gamma, beta, mean, var + rng.random(var.shape)])
    narrow, narrow_config = prune._narrowed(before, config, 0.5, "l1", data=None)
    units = [*config.conv_filters, *config.hidden_units]
    assert [*narrow_config.conv_filters, *narrow_config.hidden_units] == [u // 2 for u in units]
    x = _images(16)
    for name in _names(config):
        out = f"{name}_relu" if config.batch_norm else name
        a = keras.Model(before.inputs, before.get_layer(out).output).predict(x, verbose=0)
        b = keras.Model(narrow.inputs, narrow.get_layer(out).output).predict(x, verbose=0)
        assert np.abs(a[..., alive[name]]).max() > 0.01  # alive indeed
        np.testing.assert_allclose(b, a[..., alive[name]], rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(
        narrow.predict(x, verbose=0), before.predict(x, verbose=0), rtol=1e-4, atol=1e-6
    )
    path = tmp_path / "narrow.keras"
    narrow.save(path)
    assert keras.saving.load_model(path).count_params() == narrow.count_params()


def test_sparsity_the_small_kernels_cannot_reach_is_refused():
    keras.utils.set_random_seed(0)
    config = dataclasses.replace(CONV, conv_filters=(4,), hidden_units=(8,))
    with pytest.raises(prune.PruneError, match="choose a lower --sparsity"):
        prune._masked_for(build_model(config), 0.99, epochs=4)


@pytest.mark.parametrize("hidden", [(16,), (16, 8)], ids=["one-layer", "two-layers"])
def test_the_activation_score_narrows_a_model_of_any_depth(hidden):
    # A probe with one output gives Keras an array, not a list of one: mlp-128 crashed.
    keras.utils.set_random_seed(0)
    config = dataclasses.replace(MLP, hidden_units=hidden, dropout=0.2)
    data = types.SimpleNamespace(x_train=(_images(64) * 255).astype(np.uint8))
    _, narrow = prune._narrowed(build_model(config), config, 0.5, "activation", data)
    assert narrow.hidden_units == tuple(u // 2 for u in hidden)

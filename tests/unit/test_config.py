import dataclasses

import pytest

from mnistlab.config import PRESETS, ConfigError, EnsembleConfig, TrainConfig, preset_config

# (preset, hidden_units, dropout, l2, epochs, batch_size) as published for each variant.
PUBLISHED = [
    ("deep-mlp", (512, 256, 128), 0.3, 0.0, 50, 128),
    ("mlp-128", (128,), 0.2, 0.0, 10, 128),
    ("mlp-l2", (128, 64), 0.2, 0.01, 20, 64),
    ("mlp-512x2", (512, 512), 0.0, 0.0, 20, 32),
]


@pytest.mark.parametrize(("name", "hidden", "dropout", "l2", "epochs", "batch"), PUBLISHED)
def test_presets_match_the_published_variants(name, hidden, dropout, l2, epochs, batch):
    config = PRESETS[name]
    assert config.preset == name
    assert (config.hidden_units, config.dropout, config.l2) == (hidden, dropout, l2)
    assert (config.epochs, config.batch_size) == (epochs, batch)


def test_cnn_basic_is_the_published_article_cnn():
    config = PRESETS["cnn-basic"]
    assert config.conv_filters == (32,)
    assert (config.hidden_units, config.dropout) == ((128,), 0.0)


def test_deep_mlp_aug_is_the_reference_mlp_with_augmentation_on_a_fixed_schedule():
    reference, augmented = PRESETS["deep-mlp"], PRESETS["deep-mlp-aug"]
    assert augmented.augment and not reference.augment
    assert augmented.hidden_units == reference.hidden_units
    assert 0 < augmented.dropout < reference.dropout  # the distortions regularise too
    assert augmented.lr_schedule == "onecycle"
    assert augmented.patience >= augmented.epochs  # the schedule, not early stopping, ends it


def test_cnn_is_a_batch_normalised_augmented_cnn_on_a_fixed_schedule():
    config = PRESETS["cnn"]
    assert config.conv_filters and config.batch_norm and config.augment
    assert config.lr_schedule == "onecycle"
    assert config.patience >= config.epochs  # the schedule, not early stopping, ends it


@pytest.mark.parametrize(
    ("members", "model", "message"),
    [
        (("a",), "final", "at least two runs"),
        (("a", "a"), "final", "listed twice"),
        (("a", "b"), "last", "unknown model 'last'"),
    ],
)
def test_ensemble_config_checks(members, model, message):
    with pytest.raises(ConfigError, match=message):
        EnsembleConfig(members=members, model=model)


def test_reference_training_settings():
    config = PRESETS["deep-mlp"]
    assert config.learning_rate == 1e-3
    assert config.validation_split == 0.2
    assert config.patience == 5


def test_round_trip_through_a_json_dict():
    config = preset_config("mlp-l2", seed=3, limit=500)
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
    assert TrainConfig.from_dict(as_json) == config


def test_unknown_keys_are_rejected_by_name():
    with pytest.raises(ConfigError, match="unknown TrainConfig keys: colour"):
        TrainConfig.from_dict({"epochs": 3, "colour": "blue"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", "10"), ("epochs", True), ("hidden_units", (1.5,)), ("dropout", "0.1"),
     ("limit", 2.5), ("save_h5", 1)],
)  # fmt: skip
def test_wrong_types_are_rejected(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be of type"):
        dataclasses.replace(TrainConfig(), **{field: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be > 0"),
        ("dropout", 1.0, "dropout must be in"),
        ("validation_split", 1.0, "validation_split must be in"),
        ("hidden_units", (), "at least one layer"),
        ("learning_rate", 0.0, "learning_rate must be > 0"),
        ("limit", 1, "limit must be > 1"),
        ("conv_filters", (32, 32, 32, 32), "at most 3 conv blocks"),
        ("lr_schedule", "step", "unknown lr_schedule 'step'; choose from: constant, cosine"),
        ("conv_padding", "full", "unknown conv_padding 'full'; choose from: valid, same"),
        ("final_weights", "worst", "unknown final_weights 'worst'; choose from: best, last"),
        ("augment_strength", 0.0, r"augment_strength must be in \(0, 1\], got 0.0"),
        ("augment_strength", 0.5, r"augment_strength needs augment \(--augment"),
    ],
)
def test_out_of_range_values_are_rejected(field, value, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TrainConfig(), **{field: value})


def test_ints_are_accepted_for_float_fields():
    assert TrainConfig.from_dict({"learning_rate": 1}).learning_rate == 1


def test_unknown_preset_lists_the_choices():
    with pytest.raises(
        ConfigError,
        match="choose from: deep-mlp, mlp-128, mlp-l2, mlp-512x2, deep-mlp-aug, cnn-basic",
    ):
        preset_config("resnet")


def test_none_overrides_keep_the_preset_value():
    config = preset_config("mlp-128", epochs=None, batch_size=256)
    assert config.epochs == 10
    assert config.batch_size == 256


def test_a_schedule_that_ends_training_still_does_with_more_epochs():
    # The cnn preset's one-cycle run ends by its schedule (patience = epochs = 30); with 50
    # epochs, a patience of 30 stopped one 50-epoch member at epoch 48, mid-schedule.
    assert preset_config("cnn", epochs=50).patience == 50
    assert preset_config("cnn", epochs=50, patience=7).patience == 7
    assert preset_config("cnn").patience == 30
    assert preset_config("deep-mlp", epochs=10).patience == 5  # early stopping ends it


def test_a_schedule_that_ends_training_keeps_its_last_epoch():
    # Their lowest val_loss is picked on held-out noise; the annealed last epoch measured as
    # good or better (README, "Last-epoch weights"). Early-stopped presets restore the best.
    assert preset_config("cnn").final_weights == "last"
    assert preset_config("deep-mlp-aug", epochs=20).final_weights == "last"
    assert preset_config("cnn", final_weights="best").final_weights == "best"
    assert preset_config("deep-mlp").final_weights == "best"
    assert preset_config("cnn-basic").final_weights == "best"

"""TrainConfig's fields are `mmfast train`'s options: one field written with `option(...)` is one
flag, whose value reaches the config; choices are enums that take their string values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mmfast.cli import build_parser
from mmfast.cli.train import config_options, config_overrides
from mmfast.data.resize import Resize
from mmfast.diffusion import Prediction
from mmfast.train.config import Precision, TrainConfig, get_train_config

# A value each option's flag takes that differs from the default (choices: their last value).
SAMPLE = {
    "data": "/clips",
    "grad_clip": "0.5",
    "max_minutes": "1.5",
    "hflip_p": "0.5",
    "ema_rate": "0.5",
}


def _sample_value(field: dataclasses.Field, flag_choices) -> list[str]:
    if flag_choices is not None:
        return [flag_choices[-1]]
    if isinstance(field.default, bool):
        return []
    return [SAMPLE.get(field.name, "3")]


@pytest.mark.parametrize("command, stage", [("train", "base"), ("train-sr", "sr")])
def test_every_option_field_is_a_flag_that_sets_its_field(command, stage):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    by_dest = {a.dest: a for a in sub._actions}
    options = config_options(stage)
    assert {"steps", "lr", "ema_rate", "precision", "max_minutes"} <= {f.name for f, _ in options}
    assert ("prediction" in {f.name for f, _ in options}) == (stage == "base")
    argv = [command, "--out", "run"]
    for field, _ in options:
        action = by_dest[field.name]
        argv += [action.option_strings[0], *_sample_value(field, action.choices)]
    overrides = config_overrides(parser.parse_args(argv))
    assert set(overrides) == {f.name for f, _ in options}
    for field, _ in options:
        assert overrides[field.name] != field.default, field.name


def test_grad_clip_zero_disables_clipping():
    args = build_parser().parse_args(["train", "--out", "run", "--grad-clip", "0"])
    assert config_overrides(args) == {"grad_clip": None}


def test_choices_are_enums_that_take_their_values_and_read_back_from_json():
    config = get_train_config("demo", precision="bf16", resize="center-crop")
    assert config.precision is Precision.BF16 and config.resize is Resize.CENTER_CROP
    assert config.prediction is Prediction.V
    saved = json.loads(config.to_json())  # enums are saved as their string values
    assert saved["precision"] == "bf16" and saved["prediction"] == "v"
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'fp16', 'bf16'\)"):
        TrainConfig(precision="fp8")

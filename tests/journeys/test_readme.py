"""README and CLI cannot drift apart: every `mmfast` command line of README parses with the real
argument parser and is run by a journey, and README's Python examples run (tiny preset)."""

from __future__ import annotations

import os

import pytest
import torch
from readme import code_blocks, command_lines

from mmfast.cli import build_parser
from mmfast.models import CoupledUNet, SuperResUNet
from mmfast.models.official import to_official_state_dict
from mmfast.models.official_sr import to_official_sr_state_dict

# The README commands the journeys run: (words the command holds, its launcher).
JOURNEYS = [
    (("demo",), None),  # test_demo.py
    (("train", "--precision"), None),  # test_train_and_sample.py
    (("train",), "torchrun"),
    (("sample", "--sampler", "dpm-solver"), None),
    (("sample", "--noise-order"), None),  # test_train_and_sample.py
    (("sample", "--precision"), None),
    (("sample", "--condition-video"), None),
    (("sample", "--condition-audio"), None),  # and test_official.py at the released size
    (("convert-official", "landscape.pt"), None),  # test_official.py
    (("sample", "--checkpoint", "landscape.safetensors"), None),
    (("train-sr",), None),  # test_super_resolution.py
    (("sample", "--sr"), None),
    (("convert-official", "--sr"), None),
    (("eval", "--vggish"), None),  # test_eval.py
    (("eval", "--protocol", "mmdiffusion"), None),
    (("eval",), "torchrun"),  # test_eval.py
    (("train", "--tensorboard"), None),  # test_watch.py
    (("plot",), None),
    (("sample",), "torchrun"),  # test_sample_ranks.py
    (("prepare",), None),  # test_prepare.py
    (("prepare",), "torchrun"),
    (("train", "~/landscape-64"), None),
]


def test_every_readme_command_parses():
    parser = build_parser()
    commands = command_lines()
    assert len(commands) >= 8, commands
    for _, argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit as err:
            pytest.fail(f"README command `mmfast {' '.join(argv)}` does not parse ({err})")
        assert callable(args.func)


def test_every_readme_command_is_run_by_a_journey():
    for launcher, argv in command_lines():
        claimed = [
            words
            for words, by in JOURNEYS
            if all(w in argv for w in words) and (launcher[:1] == [by] if by else not launcher)
        ]
        assert len(claimed) == 1, f"`{' '.join(launcher + ['mmfast'] + argv)}`: journeys {claimed}"


# README literal -> what the test runs instead (the tiny preset's sizes); each must occur.
SUBSTITUTIONS = [
    (
        "sample(model, (4, 16, 3, 64, 64), (4, 1, 25600)",
        "sample(model, (1, 16, 3, 64, 64), (1, 1, 25600)",
    ),
    (
        'load_model("landscape.pt")',
        'load_model("landscape.pt", config="tiny")',
    ),
    ("64, 64", "32, 32"),
    ("25600", "4096"),
    ("steps=20", "steps=2"),
    ("steps=50", "steps=2"),
    (
        'load_model("landscape-sr.pt")',
        'load_model("landscape-sr.pt", config="tiny-sr")',
    ),
    ("256, 256", "128, 128"),
    ("steps=25", "steps=2"),
]


def test_readme_python_examples_run(tmp_path, monkeypatch):
    torch.save(to_official_state_dict(CoupledUNet("tiny")), tmp_path / "landscape.pt")
    torch.save(to_official_sr_state_dict(SuperResUNet("tiny-sr")), tmp_path / "landscape-sr.pt")
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks("python")
    assert len(blocks) >= 2
    source = "\n".join(blocks)
    for old, _ in SUBSTITUTIONS:
        assert old in source, f"README no longer has {old!r}: update the substitutions"
    namespace: dict = {}
    torch.manual_seed(0)
    applied = set()
    for i, block in enumerate(blocks):
        for old, new in SUBSTITUTIONS:
            if old in block:
                applied.add(old)
            block = block.replace(old, new)
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
    assert applied == {old for old, _ in SUBSTITUTIONS}, "a substitution matched nothing"
    assert namespace["eps_video"].shape == (2, 16, 3, 32, 32)
    assert namespace["eps_audio"].shape == (2, 1, 4096)
    assert os.path.isfile("landscape.safetensors")
    assert namespace["video"].shape == (1, 16, 3, 32, 32)
    assert torch.isfinite(namespace["video"]).all() and torch.isfinite(namespace["loss"])
    assert namespace["out"].shape == (2, 6, 128, 128)
    assert namespace["high"].shape == (1, 16, 3, 128, 128)

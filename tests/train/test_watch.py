"""Watching a run: log records with the loss by timestep quartile, lr, grad norm and data-wait
share; the same numbers as TensorBoard scalars; EMA preview clips from a fixed seed; the loss plot."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from fake_clips import SMALL_MODEL, FakeClips

from mmfast.train import get_train_config, train
from mmfast.train.preview import PREVIEW_CLIPS, preview_clips
from mmfast.train.watch import TAGS, MissingExtra, Window


def _config(**kw):
    base = dict(
        model_overrides=SMALL_MODEL, steps=4, batch_size=2, log_every=1, checkpoint_every=4, lr=1e-3
    )
    return get_train_config("tiny", **(base | kw))


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    pytest.importorskip("tensorboard")
    with pytest.MonkeyPatch.context() as patch:  # 2 sampler steps a preview: CI time
        patch.setattr("mmfast.train.preview.PREVIEW_STEPS", 2)
        yield _watched_run(tmp_path_factory.mktemp("watched") / "run")


def _watched_run(run):
    result = train(
        _config(tensorboard=True, sample_every=2, grad_clip=None, warmup_steps=4),
        run,
        progress=False,
        dataset=FakeClips(),
    )
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return run, result, log


def test_log_records_hold_what_a_run_is_watched_by(watched):
    _, _, log = watched
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["lr"] for r in log] == pytest.approx([1e-3 * k / 4 for k in (1, 2, 3, 4)])
    for r in log:
        assert r["grad_norm"] > 0 and 0 <= r["data_wait"] <= 1 and r["samples_per_s"] > 0
        quartiles = {k: v for k, v in r.items() if k.startswith("loss_t")}
        # two samples a step: one or two quartiles drawn, each an unweighted video + audio error
        assert 1 <= len(quartiles) <= 2 and all(v > 0 for v in quartiles.values())
        assert min(quartiles.values()) <= r["video"] + r["audio"] <= max(quartiles.values()) + 1e-6


def test_tensorboard_holds_the_logged_numbers(watched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _, log = watched
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for key in ("loss", "video", "audio", "lr", "grad_norm", "samples_per_s", "data_wait"):
        assert TAGS[key] in tags, key
        got = [(e.step, e.value) for e in events.Scalars(TAGS[key])]
        assert got == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in log], key
    assert any(t.startswith("loss_by_timestep/") for t in tags)


def test_previews_of_the_ema_model_from_a_fixed_seed(watched):
    run, result, _ = watched
    for step in (2, 4):
        for k in range(PREVIEW_CLIPS):
            for suffix in (".mp4", ".png"):
                path = run / "previews" / f"step_{step:07d}_{k}{suffix}"
                assert path.is_file() and path.stat().st_size > 0, path
    model = result.model
    first, again = preview_clips(model, seed=0), preview_clips(model, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # comparable over the run
    other = preview_clips(model, seed=1)
    assert not torch.equal(first[0], other[0])
    assert first[0].shape == (PREVIEW_CLIPS, 8, 3, 16, 16) and first[0].abs().max() <= 1


def test_plot_draws_the_run(watched, tmp_path):
    from mmfast.train.plot import plot_run, read_log

    run, _, log = watched
    assert read_log(run) == log
    out = plot_run(run, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_without_tensorboard_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    with pytest.raises(MissingExtra, match=r"pip install 'mmfast\[tensorboard\]'"):
        train(_config(tensorboard=True), tmp_path / "run", progress=False, dataset=FakeClips())
    assert not (tmp_path / "run").exists()  # refused before the run wrote anything


def test_window_sorts_errors_into_timestep_quartiles():
    window = Window(torch.device("cpu"), num_timesteps=1000)
    window.add(4, 0.0, torch.tensor([0, 249, 250, 999]), torch.tensor([1.0, 3.0, 5.0, 7.0]))
    window.add(1, 0.0, torch.tensor([998]), torch.tensor([9.0]))
    record = window.close()
    assert {k: v for k, v in record.items() if k.startswith("loss_t")} == {
        "loss_t0": 2.0,
        "loss_t1": 5.0,
        "loss_t3": 8.0,
    }
    assert "loss_t0" not in window.close()  # a new window starts empty


def test_window_leaves_checkpoint_and_preview_writes_out_of_samples_per_s(monkeypatch):
    clock = iter([100.0, 110.0, 110.0])  # the window opens at 100 s, closes and reopens at 110 s
    monkeypatch.setattr("mmfast.train.watch.time.monotonic", lambda: next(clock))
    window = Window(torch.device("cpu"), num_timesteps=1000)
    window.add(40, 1.0)
    window.exclude(6.0)  # a preview took 6 of the 10 s
    record = window.close()
    assert record["samples_per_s"] == 40 / 4.0 and record["data_wait"] == 1.0 / 4.0
    assert window.excluded == 0.0  # the next window starts with nothing left out


def test_sr_stage_has_no_previews():
    with pytest.raises(ValueError, match="SR stage"):
        get_train_config("tiny-sr", sample_every=2)

"""The training loop: exact resume, checkpoints, precisions, DDP across two CPU processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from fake_clips import SMALL_MODEL, FakeClips
from safetensors import safe_open
from safetensors.torch import load_file

from mmfast.models import load_model
from mmfast.models.checkpoint_file import read_checkpoint_metadata as read_metadata
from mmfast.train import TrainConfig, get_train_config, train
from mmfast.train.data import Draws, DrawSampler


def _config(**kw):
    base = dict(
        model_overrides=SMALL_MODEL, steps=4, batch_size=2, log_every=1, checkpoint_every=2, lr=1e-3
    )
    base.update(kw)
    return get_train_config("tiny", **base)


def _tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def test_draws_are_deterministic_sharded_and_resumable():
    draws = Draws(FakeClips(n=5), seed=3)
    a = [draws[d] for d in range(12)]
    b = [Draws(FakeClips(n=5), seed=3)[d] for d in range(12)]
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    epoch0 = sorted(int(draws.permutation(0)[i]) for i in range(5))
    assert epoch0 == list(range(5))  # every clip once per epoch
    assert not torch.equal(draws.permutation(0), draws.permutation(1))
    it0, it1 = iter(DrawSampler(0, 0, 2)), iter(DrawSampler(0, 1, 2))
    assert [next(it0) for _ in range(3)] == [0, 2, 4] and [next(it1) for _ in range(3)] == [1, 3, 5]
    resumed = iter(DrawSampler(2, 1, 2))
    assert next(resumed) == 5


def test_resume_reaches_the_same_weights(tmp_path):
    """4 steps in one go == 2 steps, stop, resume to 4 (model, EMA and optimizer, bit for bit)."""
    config = _config(model_overrides=SMALL_MODEL + (("dropout", 0.1),))
    full = train(config, tmp_path / "full", progress=False, dataset=FakeClips())
    part = train(config, tmp_path / "part", progress=False, dataset=FakeClips(), stop_at=2)
    assert part.step == 2 and read_metadata(part.checkpoint)["step"] == "2"
    resumed = train(config, tmp_path / "part", progress=False, dataset=FakeClips())
    assert full.step == resumed.step == 4
    a, b = load_file(str(full.checkpoint)), load_file(str(resumed.checkpoint))
    assert set(a) == set(b)
    for k in a:
        if not k.startswith("rng."):
            assert torch.equal(a[k], b[k]), k
    init = train(
        config.replace(steps=1, lr=1e-12), tmp_path / "init", progress=False, dataset=FakeClips()
    ).model
    assert not torch.equal(
        full.model.head.video_conv.weight, init.head.video_conv.weight
    )  # training moved it


def test_checkpoint_is_safetensors_with_everything(tmp_path):
    result = train(_config(steps=2), tmp_path / "run", progress=False, dataset=FakeClips())
    with safe_open(str(result.checkpoint), framework="pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert any(k.startswith("model.") for k in keys) and any(k.startswith("ema.") for k in keys)
    assert any(k.startswith("optim.") and k.endswith("exp_avg_sq") for k in keys)
    assert "rng.torch" in keys
    assert meta["step"] == "2" and TrainConfig.from_json(meta["train_config"]) == _config(steps=2)
    assert json.loads(meta["optimizer"])["param_groups"][0]["lr"] == 1e-3
    assert "scale" in json.loads(meta["scaler"]) or json.loads(meta["scaler"]) == {}
    assert not list((tmp_path / "run").glob(".*.tmp"))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(
        {"loss", "video", "audio", "samples_per_s"} <= set(r) for r in log
    )
    ema_model = load_model(result.checkpoint, weights="ema")
    raw_model = load_model(result.checkpoint, weights="raw")
    assert not torch.equal(ema_model.head.audio_conv.weight, raw_model.head.audio_conv.weight)
    # The run folder and the EMA model file written beside the checkpoint hold the same weights.
    for source in (tmp_path / "run", result.ema_model):
        same = load_model(source)
        assert all(torch.equal(a, b) for a, b in zip(same.parameters(), ema_model.parameters()))


def test_a_different_model_cannot_resume(tmp_path):
    train(_config(steps=1), tmp_path / "run", progress=False, dataset=FakeClips())
    with pytest.raises(ValueError, match="holds a checkpoint of another model"):
        train(
            _config(steps=2, model_overrides=SMALL_MODEL + (("dropout", 0.3),)),
            tmp_path / "run",
            progress=False,
            dataset=FakeClips(),
        )


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_steps(tmp_path, precision):
    slow_on_cpu = precision == "fp16" and not torch.cuda.is_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(
            _config(steps=2, precision=precision),
            tmp_path / precision,
            progress=False,
            dataset=FakeClips(),
        )
    said = any("fp16 on the CPU runs about 8x slower" in str(w.message) for w in caught)
    assert said == slow_on_cpu
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last_loss))
    scaler = json.loads(read_metadata(result.checkpoint)["scaler"])
    if precision == "fp16":
        assert scaler["scale"] > 0  # the GradScaler ran and its state was saved
    assert next(result.model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_time_limit_stops_with_a_checkpoint(tmp_path):
    result = train(
        _config(steps=1000, max_minutes=0.0), tmp_path / "run", progress=False, dataset=FakeClips()
    )
    assert result.step == 1 and read_metadata(result.checkpoint)["step"] == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    here = Path(__file__).parent
    env = dict(
        os.environ,
        PYTHONPATH=str(here) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(here / "ddp_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    w0, w1 = (
        load_file(str(tmp_path / "rank0.safetensors")),
        load_file(str(tmp_path / "rank1.safetensors")),
    )
    assert set(w0) == set(w1)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    seen0 = set(json.loads((tmp_path / "rank0.json").read_text()))
    seen1 = set(json.loads((tmp_path / "rank1.json").read_text()))
    assert len(seen0) == len(seen1) == 6 and not seen0 & seen1  # each rank read its own shard
    assert read_metadata(tmp_path / "run" / "checkpoint.safetensors")["world_size"] == "2"


@pytest.mark.ci_env("gpu-image")  # the compile path of the oldest torch; test_compile_auto: both
def test_compiled_training_steps(tmp_path, monkeypatch):
    """--compile: per-stage shifts go in as tensors, so one graph serves every draw. (aot_eager:
    Dynamo and AOTAutograd without Inductor's C++ build, which would take minutes here.)"""
    import functools

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    torch._dynamo.reset()
    result = train(
        _config(steps=3, compile=True), tmp_path / "run", progress=False, dataset=FakeClips()
    )
    assert result.step == 3 and torch.isfinite(torch.tensor(result.last_loss))
    eager = train(_config(steps=3), tmp_path / "eager", progress=False, dataset=FakeClips())
    for (k, a), b in zip(result.model.state_dict().items(), eager.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_training_options_reach_the_loss_the_model_file_and_the_saved_config(tmp_path, monkeypatch):
    import mmfast.train.tasks as tasks

    seen = []
    real_loss = tasks.diffusion_loss

    def spy(*args, **kwargs):
        seen.append({k: kwargs[k] for k in ("prediction", "weighting", "min_snr_gamma")})
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(tasks, "diffusion_loss", spy)
    config = _config(
        steps=3, prediction="v", loss_weighting="min-snr", min_snr_gamma=2.0, warmup_steps=4
    )
    result = train(config, tmp_path / "run", progress=False, dataset=FakeClips())
    assert seen == [dict(prediction="v", weighting="min-snr", min_snr_gamma=2.0)] * 3
    meta = read_metadata(result.checkpoint)
    assert TrainConfig.from_json(meta["train_config"]) == config
    # Warmup: step k (0-based) runs at lr (k + 1) / 4; the last one was step 2.
    assert json.loads(meta["optimizer"])["param_groups"][0]["lr"] == pytest.approx(0.75e-3)
    assert [config.learning_rate(k) for k in (0, 3, 4, 100)] == pytest.approx(
        [0.25e-3, 1e-3, 1e-3, 1e-3]
    )
    for weights in ("ema", "raw"):
        assert load_model(result.checkpoint, weights=weights).config.prediction == "v"

    assert load_model(result.ema_model).config.prediction == "v"
    with pytest.raises(ValueError, match="prediction 'v' \\(this run: 'eps'\\)"):
        train(
            config.replace(prediction="eps", steps=4),
            tmp_path / "run",
            progress=False,
            dataset=FakeClips(),
        )


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(prediction="noise"), "prediction must be one of"),
        (dict(loss_weighting="snr"), "loss_weighting must be one of"),
        (dict(min_snr_gamma=0.0), "min_snr_gamma must be positive"),
        (dict(warmup_steps=-1), "warmup_steps must be >= 0"),
        (dict(model_overrides=(("prediction", "v"),)), "not a model override"),
        (dict(model="tiny-sr", prediction="v"), "the SR stage trains"),
    ],
)
def test_training_options_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        get_train_config("tiny", **changes)

"""The SR stage through the shared trainer: its loss falls, and a stopped and resumed run ends with
the weights of an uninterrupted one (as the coupled U-Net's runs do)."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open

from mmfast.diffusion import NoiseSchedule, hybrid_loss
from mmfast.models import SuperResUNet, load_model
from mmfast.train import get_train_config, train

SMALL_SR = (
    ("large_size", 32),
    ("small_size", 8),
    ("model_channels", 16),
    ("channel_mult", (1, 2)),
    ("attention_resolutions", (2,)),
    ("norm_groups", 8),
)


class FakeFrames:
    """(high [3, 32, 32], low [3, 8, 8]) pairs: smooth images and their 4x block means."""

    def __init__(self, n: int = 12):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def get(self, index: int, generator=None):
        g = torch.Generator().manual_seed(index)
        base = torch.rand(3, 4, 4, generator=g) * 2 - 1
        high = torch.nn.functional.interpolate(base[None], (32, 32), mode="bilinear")[0]
        return high, torch.nn.functional.avg_pool2d(high[None], 4)[0]


def _config(**kw):
    return get_train_config(
        "tiny-sr", model_overrides=SMALL_SR, batch_size=2, log_every=1, checkpoint_every=2, **kw
    )


def test_tiny_sr_hybrid_loss_falls_on_a_fixed_batch():
    cfg = _config().model_config()
    torch.manual_seed(0)
    model = SuperResUNet(cfg)
    data = FakeFrames(4)
    high = torch.stack([data.get(i)[0] for i in range(4)])
    low = torch.stack([data.get(i)[1] for i in range(4)])
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(high.shape, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = NoiseSchedule.linear()
    losses = []
    for _ in range(40):
        out = hybrid_loss(lambda x, tt: model(x, tt, low), high, schedule, timesteps=t, noise=noise)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::8]


def test_sr_runs_resume_exactly(tmp_path):
    full = train(_config(steps=4), tmp_path / "full", progress=False, dataset=FakeFrames())
    train(_config(steps=4), tmp_path / "cut", progress=False, dataset=FakeFrames(), stop_at=2)
    resumed = train(_config(steps=4), tmp_path / "cut", progress=False, dataset=FakeFrames())
    assert full.step == resumed.step == 4
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    log = [json.loads(x) for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and {"mse", "vb"} <= set(log[0])
    with safe_open(str(tmp_path / "full" / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["model_format"] == "mmfast.SuperResUNet"
    ema = load_model(tmp_path / "full" / "checkpoint.safetensors")
    assert isinstance(ema, SuperResUNet) and ema.config.large_size == 32
    assert isinstance(
        load_model(tmp_path / "full" / "model-ema.safetensors", kind=SuperResUNet), SuperResUNet
    )

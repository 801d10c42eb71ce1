"""The release's training objective, and that minimising it fits a fixed batch."""

from __future__ import annotations

import pytest
import torch

from mmfast.diffusion import NoiseSchedule, diffusion_loss
from mmfast.models import CoupledUNet


def test_loss_is_the_sum_of_per_modality_mses():
    sched = NoiseSchedule.linear()
    video, audio = torch.zeros(3, 2, 3, 4, 4), torch.zeros(3, 1, 16)
    zero = lambda v, a, t: (torch.zeros_like(v), torch.zeros_like(a))
    out = diffusion_loss(
        zero, video, audio, sched, generator=torch.Generator().manual_seed(0), weights=(2.0, 0.5)
    )
    # With a zero predictor each MSE is the mean square of the drawn noise: about 1.
    assert 0.8 < float(out.video) < 1.2 and 0.6 < float(out.audio) < 1.4
    torch.testing.assert_close(out.loss, 2.0 * out.video + 0.5 * out.audio)


def test_one_timestep_per_sample_and_independent_noise():
    sched = NoiseSchedule.linear()
    seen = {}

    def spy(v, a, t):
        seen.update(v=v, a=a, t=t)
        return torch.zeros_like(v), torch.zeros_like(a)

    video, audio = torch.ones(4, 2, 3, 4, 4), torch.ones(4, 1, 32)
    diffusion_loss(
        spy,
        video,
        audio,
        sched,
        timesteps=torch.tensor([0, 10, 500, 999]),
        generator=torch.Generator().manual_seed(0),
    )
    assert seen["t"].tolist() == [0.0, 10.0, 500.0, 999.0] and seen["t"].dtype == torch.float32
    # x_t = sqrt(ab) * 1 + sqrt(1 - ab) * noise: at t = 0 it is almost the data, at 999 almost noise
    assert (seen["v"][0] - 1).abs().max() < 0.1 and (seen["v"][3] - 1).abs().mean() > 0.5
    nv = seen["v"][3].flatten()[:32] - float(sched.alpha_bar(999)) ** 0.5
    na = seen["a"][3].flatten() - float(sched.alpha_bar(999)) ** 0.5
    assert abs(float(torch.corrcoef(torch.stack([nv, na]))[0, 1])) < 0.5


def test_tiny_unet_overfits_a_fixed_batch(dtype=torch.float32):
    """Same batch, timesteps and noise every step: AdamW must drive the loss well down. (bf16
    autocast training is tests/train/test_trainer.py::test_mixed_precision_steps.)"""
    torch.manual_seed(0)
    model = CoupledUNet("tiny").train()
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 8, 3, 16, 16, generator=g) * 2 - 1  # 8 frames of 16x16: a quick shape
    audio = torch.rand(2, 1, 512, generator=g) * 2 - 1
    t = torch.tensor([50, 400])
    sched = NoiseSchedule.linear()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = diffusion_loss(
                lambda v, a, tt: model(v, a, tt, shift=0),
                video,
                audio,
                sched,
                generator=torch.Generator().manual_seed(1),
                timesteps=t,
            )
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[0] == pytest.approx(2.0, rel=0.2)  # zero-initialised heads: two MSEs of about 1
    assert min(losses[-5:]) < 0.5 * losses[0], losses

"""Zero-shot conditional generation (paper section 3.4): audio->video and video->audio.

- replacement: before every model call at time tau, the given modality of the state is overwritten
  with q(x_tau | condition), drawn with one noise tensor fixed for the whole run.
- guided: replacement, and after each joint step t -> s the generated modality moves by
  -scale * w(t) * grad_{x_t} sum_b mean((x_s[given] - q(x_s | condition))^2), with
  w(t) = sqrt(alpha_bar_t) (the release) or sqrt(1 - alpha_bar_t) (the paper's eq. 12).

The loss is multiplied by `loss_scale` before the backward pass (for fp16 denoisers, where the
gradient would underflow) and the gradient divided by it before use: the step never depends on it.
The release never divided: under fp16 its scale 3 was in effect 3 * 2**20 (it also averaged the
loss over the batch, so per sample it was 3 * 2**20 / B). `scale=3 * 2**20` reproduces it for B = 1.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmfast.choice import Choice
from mmfast.diffusion.base import CLEAN, History, Sampler, StepContext, Transition
from mmfast.diffusion.pair import MODALITIES, PairLayout
from mmfast.diffusion.schedule import NoiseSchedule

RELEASE_FP16_SCALE = 3.0 * 2**20


class Method(Choice):
    REPLACEMENT = "replacement"
    GUIDED = "guided"


class GuidanceWeight(Choice):
    SQRT_ALPHA_BAR = "sqrt-alpha-bar"  # the release
    SQRT_ONE_MINUS_ALPHA_BAR = "sqrt-one-minus-alpha-bar"  # the paper, eq. 12


@dataclass(frozen=True)
class Condition:
    """The given modality and how to condition on it.

    modality: "audio" (audio->video) or "video" (video->audio); value: that modality's clean
    signal, shaped like it ([B, F, C, H, W] or [B, C, L]).
    """

    modality: str
    value: Tensor
    method: Method = Method.GUIDED
    scale: float = RELEASE_FP16_SCALE
    weight: GuidanceWeight = GuidanceWeight.SQRT_ALPHA_BAR
    loss_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(
                f"condition modality must be 'video' or 'audio', got {self.modality!r}"
            )
        Method(self.method)
        GuidanceWeight(self.weight)
        if self.loss_scale <= 0:
            raise ValueError(f"loss_scale must be positive, got {self.loss_scale}")

    @property
    def generated(self) -> str:
        return "video" if self.modality == "audio" else "audio"


class Conditioner:
    """Runs a sampler's steps under a Condition (built by `sample`)."""

    def __init__(
        self, condition: Condition, layout: PairLayout, schedule: NoiseSchedule, noise: Tensor
    ):
        expected = layout.video_shape if condition.modality == "video" else layout.audio_shape
        if tuple(condition.value.shape) != tuple(expected):
            raise ValueError(
                f"the {condition.modality} condition must have shape {tuple(expected)}, got {tuple(condition.value.shape)}"
            )
        self.condition = condition
        self.schedule = schedule
        self.given = layout.part(condition.modality)
        self.generated = layout.part(condition.generated)
        self.value = condition.value.reshape(layout.batch, -1).to(noise.device, noise.dtype)
        self.noise = noise  # [B, N_given], fixed for the run

    def noisy_condition(self, tau: float) -> Tensor:
        return self.schedule.add_noise(self.value, self.noise, tau)

    def replace(self, x: Tensor, tau: float) -> Tensor:
        x = x.clone()
        x[:, self.given] = self.noisy_condition(tau)
        return x

    def wrap(self, ctx: StepContext) -> StepContext:
        """The same context whose noise predictor sees the replaced state."""
        eps = ctx.eps
        return dataclasses.replace(ctx, eps=lambda x, tau: eps(self.replace(x, tau), tau))

    def step(
        self, sampler: Sampler, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        cond = self.condition
        if Method(cond.method) is Method.REPLACEMENT or tr.s == CLEAN:
            # The release skips guidance on the last step (its target is the data itself).
            with torch.no_grad():
                return sampler.step(ctx, x, tr, history)
        x_in = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out, history = sampler.step(ctx, x_in, tr, history)
            err = (out[:, self.given] - self.noisy_condition(tr.s)).float()
            loss = err.square().mean(dim=1).sum() * cond.loss_scale
            (grad,) = torch.autograd.grad(loss, x_in)
        grad = grad[:, self.generated] / cond.loss_scale
        acp = float(self.schedule.alpha_bar(tr.t))
        w = (
            math.sqrt(acp)
            if GuidanceWeight(cond.weight) is GuidanceWeight.SQRT_ALPHA_BAR
            else math.sqrt(1 - acp)
        )
        out = out.detach()
        out[:, self.generated] -= cond.scale * w * grad.to(out.dtype)
        return out, tuple((tau, pred.detach()) for tau, pred in history)

    def finalize(self, x: Tensor) -> Tensor:
        """The output's given modality is the condition itself."""
        x = x.clone()
        x[:, self.given] = self.value
        return x

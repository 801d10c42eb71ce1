"""The release's 64 -> 256 super-resolution U-Net (guided-diffusion's SR model), per frame.

The module tree keeps the release's names (`time_embed`, `input_blocks.i.j`, `middle_block.j`,
`output_blocks.i.j`, `out`; inside a ResBlock `in_layers.0/2`, `emb_layers.1`, `out_layers.0/3`,
`skip_connection`; inside an attention block `norm`, `qkv`, `proj_out`), so that its checkpoints
load by name; only the attention's 1x1 convs become Linear layers (weights reshaped on load).
Attention runs through `scaled_dot_product_attention` with the release's per-head q|k|v channel
order; every GroupNorm computes in fp32 and casts back, as the release's.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmfast.models.layers import GroupNorm32, timestep_embedding, zero_init
from mmfast.models.serialization import save_model
from mmfast.models.sr_config import SuperResConfig, get_sr_config


class SRResBlock(nn.Module):
    """GroupNorm -> SiLU -> [resample] -> conv3x3, then the time embedding as a scale and shift of
    the second norm (scale-shift norm) -> SiLU -> dropout -> zero-initialised conv3x3, plus the
    skip path. `resample` is "up" (nearest 2x), "down" (2x2 average) or None, applied to both paths.
    x: [B, C, H, W], emb: [B, E] -> [B, C_out, H', W']."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int,
        groups: int,
        dropout: float = 0.0,
        resample: str | None = None,
    ):
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"resample must be 'up', 'down' or None, got {resample!r}")
        self.resample = resample
        self.in_layers = nn.Sequential(
            GroupNorm32(groups, channels),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        norm, act, conv = self.in_layers
        h = conv(self._resample(act(norm(x))))
        x = self._resample(x)
        scale, shift = self.emb_layers(emb).to(h.dtype)[..., None, None].chunk(2, dim=1)
        out_norm, out_act, drop, out_conv = self.out_layers
        h = out_norm(h) * (1 + scale) + shift
        h = out_conv(drop(out_act(h)))
        return self.skip_connection(x) + h


class SRAttention(nn.Module):
    """Self-attention over the H*W pixels of an image: GroupNorm -> q|k|v -> SDPA -> zero-initialised
    projection -> residual. The q|k|v channels are grouped per head ([q_h, k_h, v_h] for head h,
    the release's legacy order). [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj_out = zero_init(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, T, C]
        qkv = self.qkv(tokens).view(b, h * w, self.heads, 3, c // self.heads)
        q, k, v = qkv.permute(3, 0, 2, 1, 4)  # each [B, heads, T, d]
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.proj_out(out).transpose(1, 2).reshape(b, c, h, w)


class SRStage(nn.ModuleList):
    """One entry of the release's block lists: a conv, or a ResBlock (+ attention)."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, SRResBlock) else layer(x)
        return x


class SuperResUNet(nn.Module):
    """The super-resolution denoiser of MM-Diffusion, applied frame by frame.

    forward(x_t [B, 3, S, S], timesteps [B], low_res [B, 3, s, s]) -> [B, 6, S, S] (eps, then the
    learned-range variance values in [-1, 1]) with S = large_size, s = small_size. Timesteps are
    the raw 0..T-1 indices (floats allowed); low_res is upsampled bilinearly and concatenated
    after x_t.
    """

    def __init__(self, config: SuperResConfig | str = "sr-256"):
        super().__init__()
        cfg = get_sr_config(config) if isinstance(config, str) else config
        self.config = cfg
        mc, groups, emb_dim = cfg.model_channels, cfg.norm_groups, cfg.time_embed_dim
        self.time_embed = nn.Sequential(
            nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

        def res(ch: int, out: int, resample: str | None = None) -> SRResBlock:
            return SRResBlock(ch, emb_dim, out, groups, cfg.dropout, resample)

        self.input_blocks = nn.ModuleList([SRStage([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        skips, ch, ds = [mc], mc, 1
        levels = len(cfg.channel_mult)
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(SRAttention(ch, cfg.num_heads, groups))
                self.input_blocks.append(SRStage(layers))
                skips.append(ch)
            if level != levels - 1:
                self.input_blocks.append(SRStage([res(ch, ch, "down")]))
                skips.append(ch)
                ds *= 2
        self.middle_block = SRStage(
            [res(ch, ch), SRAttention(ch, cfg.num_heads, groups), res(ch, ch)]
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skips.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(SRAttention(ch, cfg.num_heads_upsample, groups))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, "up"))
                    ds //= 2
                self.output_blocks.append(SRStage(layers))
        self.out = nn.Sequential(
            GroupNorm32(groups, ch),
            nn.SiLU(),
            zero_init(nn.Conv2d(mc, cfg.out_channels, 3, padding=1)),
        )

    def _check_inputs(self, x_t: Tensor, timesteps, low_res: Tensor) -> Tensor:
        cfg = self.config
        big, small, c = cfg.large_size, cfg.small_size, cfg.channels
        if x_t.dim() != 4 or tuple(x_t.shape[1:]) != (c, big, big):
            raise ValueError(f"x_t must be [B, {c}, {big}, {big}], got {tuple(x_t.shape)}")
        b = x_t.shape[0]
        if low_res.dim() != 4 or tuple(low_res.shape) != (b, c, small, small):
            raise ValueError(
                f"low_res must be [B={b}, {c}, {small}, {small}], got {tuple(low_res.shape)}"
            )
        if not isinstance(timesteps, Tensor):
            timesteps = torch.tensor(timesteps, device=x_t.device)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(b)
        if timesteps.shape != (b,):
            raise ValueError(f"timesteps must be [B={b}] or a scalar, got {tuple(timesteps.shape)}")
        return timesteps.to(x_t.device)

    def forward(self, x_t: Tensor, timesteps: Tensor | float, low_res: Tensor) -> Tensor:
        timesteps = self._check_inputs(x_t, timesteps, low_res)
        size = self.config.large_size
        upsampled = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        h = torch.cat([x_t, upsampled.to(x_t.dtype)], dim=1)
        sinusoids = timestep_embedding(
            timesteps, self.config.model_channels, dtype=self.time_embed[0].weight.dtype
        )
        emb = self.time_embed(sinusoids)
        skips = []
        for stage in self.input_blocks:
            h = self._run(stage, h, emb)
            skips.append(h)
        h = self._run(self.middle_block, h, emb)
        for stage in self.output_blocks:
            h = self._run(stage, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)

    def _run(self, stage: SRStage, h: Tensor, emb: Tensor) -> Tensor:
        if self.config.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(stage, h, emb, use_reentrant=False)
        return stage(h, emb)

    def inference_bytes_per_image(self, dtype: torch.dtype = torch.float32) -> int:
        """An upper estimate of the activation memory one image takes in a no-grad forward: the
        skip tensors the decoder waits for plus the working tensors of the widest block (the
        decoder's first block at each level concatenates a skip, its convs read and write it)."""
        cfg = self.config
        size, mc = cfg.large_size, cfg.model_channels
        elems, working, ch, side = size * size * mc, 0, mc, size
        for level, mult in enumerate(cfg.channel_mult):
            width = mult * mc
            elems += cfg.num_res_blocks * width * side * side
            working = max(working, 6 * (ch + width) * side * side)
            ch = width
            if level != len(cfg.channel_mult) - 1:
                side //= 2
                elems += ch * side * side
        bytes_per = torch.finfo(dtype).bits // 8
        return (elems + working) * bytes_per

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> None:
        """Write weights and config to one safetensors file (atomically); `load_model` reads it."""
        save_model(self, path)

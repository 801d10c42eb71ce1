"""MM-Diffusion's coupled U-Net: a video U-Net and an audio U-Net joined by RS-MMA blocks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmfast.models.config import CoupledUNetConfig, get_config
from mmfast.models.layers import (
    GroupNorm32,
    VideoConv2p1d,
    dilated_conv1d,
    timestep_embedding,
    zero_init,
)
from mmfast.models.resblock import ResBlock
from mmfast.models.rsmma import CrossModalAttention
from mmfast.models.serialization import save_model
from mmfast.ops import Shift


class Stem(nn.Module):
    """Input convolutions: video 2d+1d conv and audio conv1d, both k=3, to the base width."""

    def __init__(self, video_channels: int, audio_channels: int, channels: int):
        super().__init__()
        self.video_conv = VideoConv2p1d(video_channels, channels, 3)
        self.audio_conv = dilated_conv1d(audio_channels, channels, 3)

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self.video_conv(video), self.audio_conv(audio)


class OutputHead(nn.Module):
    """GN -> SiLU -> zero-initialised conv: Conv3d 3x3x3 for video, Conv1d k=3 for audio."""

    def __init__(self, channels: int, video_channels: int, audio_channels: int, groups: int):
        super().__init__()
        self.video_norm = GroupNorm32(groups, channels)
        self.video_conv = zero_init(nn.Conv3d(channels, video_channels, 3, padding=1))
        self.audio_norm = GroupNorm32(groups, channels)
        self.audio_conv = zero_init(dilated_conv1d(channels, audio_channels, 3))

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        return (
            self.video_conv(F.silu(self.video_norm(video))),
            self.audio_conv(F.silu(self.audio_norm(audio))),
        )


class Stage(nn.ModuleList):
    """A sequence of ResBlocks and at most one RS-MMA block, run in order (the release's
    `TimestepEmbedSequential`; its child indices are the release's)."""

    @property
    def cross(self) -> CrossModalAttention | None:
        return next((m for m in self if isinstance(m, CrossModalAttention)), None)

    def forward(
        self, video: Tensor, audio: Tensor, emb: Tensor, shift: Shift
    ) -> tuple[Tensor, Tensor]:
        for block in self:
            if isinstance(block, CrossModalAttention):
                video, audio = block(video, audio, shift)
            else:
                video, audio = block(video, audio, emb)
        return video, audio


class CoupledUNet(nn.Module):
    """The coupled U-Net of MM-Diffusion.

    `model(video, audio, timesteps, shift=None)`:
        video: [B, F, C, H, W] noisy video (C = config.video_channels).
        audio: [B, Ca, L] noisy audio (Ca = config.audio_channels).
        timesteps: [B] (or a scalar) diffusion times, int or float.
        shift: None draws each RS-MMA block's window shift R uniformly from [0, F - S] once per
            call (from `generator`, else torch's default generator; the middle block's window is
            all frames); an int fixes R for every block; a LongTensor [B] gives each sample its R;
            a sequence gives each stage its own (int or LongTensor [B]), as `draw_shifts` returns.
        generator: a CPU torch.Generator for the shift draws.
    Returns the predictions of `config.prediction` (eps for the release): video [B, F, C, H, W],
    audio [B, Ca, L].

    Sizes other than the config's work when H and W are divisible by 2**(levels-1), L by
    4**(levels-1), and L/4**n by F at every level n that has RS-MMA.
    """

    def __init__(self, config: CoupledUNetConfig | str = "mmdiffusion-64"):
        super().__init__()
        cfg = get_config(config) if isinstance(config, str) else config
        self.config = cfg
        base, groups = cfg.model_channels, cfg.norm_groups
        emb_ch = base
        self.time_embed = nn.Sequential(
            nn.Linear(base, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch)
        )
        self.stem = Stem(cfg.video_channels, cfg.audio_channels, base)

        def res(
            cin: int, cout: int, n: int, ds: int, resample: str | None = None, middle: bool = False
        ) -> ResBlock:
            """The ResBlock with dilation counter n at factor ds; the middle ones attend in both
            modalities, resampling ones in neither."""
            video_attends = resample is None and (middle or ds in cfg.video_attention_resolutions)
            audio_attends = resample is None and (middle or ds in cfg.audio_attention_resolutions)
            return ResBlock(
                cin,
                cout,
                emb_ch,
                dilation=2 ** (n % cfg.max_dilation_exponent),
                groups=groups,
                dropout=cfg.dropout,
                resample=resample,
                video_attention_heads=cfg.num_heads if video_attends else None,
                audio_attention_heads=cfg.num_heads if audio_attends else None,
            )

        def cross(ch: int, ds: int) -> list[CrossModalAttention]:
            if ds not in cfg.cross_attention_resolutions:
                return []
            window = cfg.cross_attention_windows[cfg.cross_attention_resolutions.index(ds)]
            return [
                CrossModalAttention(
                    ch, window, cfg.cross_head_channels, groups, cfg.attention_backend
                )
            ]

        # The audio dilation counter n rises by one per encoder block and falls by one per
        # non-upsampling decoder block (the release's rule).
        n, ds, ch = 1, 1, base
        skip_channels = [ch]
        self.encoder = nn.ModuleList()
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                block = res(ch, mult * base, n, ds)
                n, ch = n + 1, mult * base
                self.encoder.append(Stage([block, *cross(ch, ds)]))
                skip_channels.append(ch)
            if level != cfg.num_levels - 1:
                self.encoder.append(Stage([res(ch, ch, n, ds, resample="down")]))
                n, ds = n + 1, ds * 2
                skip_channels.append(ch)

        middle_cross = (
            [CrossModalAttention(ch, None, cfg.cross_head_channels, groups, cfg.attention_backend)]
            if cfg.middle_cross_attention
            else []
        )
        middle = [res(ch, ch, n, ds, middle=True), *middle_cross, res(ch, ch, n, ds, middle=True)]
        self.middle = Stage(middle)

        n -= 1
        self.decoder = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                block = res(ch + skip_channels.pop(), mult * base, n, ds)
                n, ch = n - 1, mult * base
                blocks = [block, *cross(ch, ds)]
                if level and i == cfg.num_res_blocks:
                    blocks.append(res(ch, ch, n, ds, resample="up"))
                    ds //= 2
                self.decoder.append(Stage(blocks))

        self.head = OutputHead(ch, cfg.video_channels, cfg.audio_channels, groups)

    # ------------------------------------------------------------------ public helpers
    @property
    def cross_blocks(self) -> list[CrossModalAttention]:
        return [m for m in self.modules() if isinstance(m, CrossModalAttention)]

    def set_attention_backend(self, backend: str) -> None:
        """Use `backend` ("auto", "naive", "gather", ...) in every RS-MMA block."""
        for block in self.cross_blocks:
            block.backend = backend

    def set_conv_backend(self, backend: str) -> None:
        """Use `backend` ("auto", "torch", "triton", ...) for every ResBlock's fused audio
        GN -> SiLU -> dilated conv."""
        for block in self.modules():
            if isinstance(block, ResBlock):
                block.conv_backend = backend

    def stages(self) -> Iterator[Stage]:
        yield from self.encoder
        yield self.middle
        yield from self.decoder

    def draw_shifts(self, frames: int, generator: torch.Generator | None = None) -> list[int]:
        """One window shift per stage (0 for stages without RS-MMA or with a full window)."""
        shifts = []
        for stage in self.stages():
            block = stage.cross
            if block is None or block.window is None or not self.config.cross_attention_shift:
                shifts.append(0)
                continue
            dev = generator.device if generator is not None else "cpu"
            r = torch.randint(0, frames - block.window + 1, (1,), generator=generator, device=dev)
            shifts.append(int(r.item()))
        return shifts

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        video: Tensor,
        audio: Tensor,
        timesteps: Tensor | float,
        shift: Shift | Sequence[Shift] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        timesteps = self._check_inputs(video, audio, timesteps, shift)
        frames = video.shape[1]
        n_stages = len(self.encoder) + 1 + len(self.decoder)
        if shift is None:
            shifts: list[Shift] = list(self.draw_shifts(frames, generator))
        elif isinstance(shift, (list, tuple)):
            if len(shift) != n_stages:
                raise ValueError(
                    f"a shift sequence needs one entry per stage ({n_stages}), got {len(shift)}"
                )
            shifts = list(shift)
        else:
            shifts = [shift] * n_stages

        sinusoids = timestep_embedding(
            timesteps, self.config.model_channels, dtype=self.time_embed[0].weight.dtype
        )
        emb = self.time_embed(sinusoids)
        v, a = self.stem(video.permute(0, 2, 1, 3, 4), audio)
        skips = [(v, a)]
        n_enc = len(self.encoder)
        for stage, r in zip(self.encoder, shifts[:n_enc]):
            v, a = self._run(stage, v, a, emb, r)
            skips.append((v, a))
        v, a = self._run(self.middle, v, a, emb, shifts[n_enc])
        for stage, r in zip(self.decoder, shifts[n_enc + 1 :]):
            sv, sa = skips.pop()
            v, a = self._run(stage, torch.cat([v, sv], 1), torch.cat([a, sa], 1), emb, r)
        v, a = self.head(v, a)
        return v.permute(0, 2, 1, 3, 4).contiguous(), a

    def _run(
        self, stage: Stage, v: Tensor, a: Tensor, emb: Tensor, shift: Shift
    ) -> tuple[Tensor, Tensor]:
        if self.config.use_checkpoint and torch.is_grad_enabled():
            # The shift is an argument, so the recomputation sees the same windows; dropout masks
            # are replayed from the saved RNG state.
            return checkpoint(stage, v, a, emb, shift, use_reentrant=False)
        return stage(v, a, emb, shift)

    def _check_inputs(self, video: Tensor, audio: Tensor, timesteps, shift) -> Tensor:
        cfg = self.config
        param = next(self.parameters())
        for name, t, rank, layout in (
            ("video", video, 5, "[B, F, C, H, W]"),
            ("audio", audio, 3, "[B, C, L]"),
        ):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}")
            if t.dim() != rank:
                raise ValueError(f"{name} must be {layout} ({rank}-D), got shape {tuple(t.shape)}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be floating point (values in [-1, 1]), got {t.dtype}")
            if t.device != param.device:
                raise ValueError(f"{name} is on {t.device} but the model is on {param.device}")
            if t.dtype != param.dtype and not torch.is_autocast_enabled(t.device.type):
                raise TypeError(
                    f"{name} is {t.dtype} but the model's parameters are {param.dtype}; cast the input "
                    "or the model, or run under torch.autocast"
                )
        b, f, c, h, w = video.shape
        if c != cfg.video_channels:
            raise ValueError(
                f"video must have {cfg.video_channels} channels at dim 2 ([B, F, C, H, W]), got {tuple(video.shape)}"
            )
        if audio.shape[0] != b:
            raise ValueError(f"video and audio batch sizes differ: {b} and {audio.shape[0]}")
        if audio.shape[1] != cfg.audio_channels:
            raise ValueError(
                f"audio must have {cfg.audio_channels} channels at dim 1 ([B, C, L]), got {tuple(audio.shape)}"
            )
        down = 2 ** (cfg.num_levels - 1)
        if h % down or w % down:
            raise ValueError(
                f"video height and width must be divisible by {down} ({cfg.num_levels} levels), got {h}x{w}"
            )
        length = audio.shape[2]
        if length % 4 ** (cfg.num_levels - 1):
            raise ValueError(
                f"audio length must be divisible by {4 ** (cfg.num_levels - 1)} ({cfg.num_levels} levels), got {length}"
            )
        windows = [blk.window for blk in self.cross_blocks if blk.window is not None]
        if windows and f < max(windows):
            raise ValueError(
                f"video has {f} frames, fewer than the largest RS-MMA window {max(windows)}"
            )
        for level in range(cfg.num_levels):
            attends = 2**level in cfg.cross_attention_resolutions or (
                level == cfg.num_levels - 1 and cfg.middle_cross_attention
            )
            if attends and (length // 4**level) % f:
                raise ValueError(
                    f"audio length {length} gives {length // 4**level} samples at level {level}, "
                    f"which RS-MMA cannot split into F={f} equal segments; use a multiple of {f * 4**level}"
                )
        for r in shift if isinstance(shift, (list, tuple)) else [shift]:
            if isinstance(r, Tensor) and r.shape != (b,):
                raise ValueError(f"a shift tensor must have shape [B={b}], got {tuple(r.shape)}")
        if not isinstance(timesteps, Tensor):
            timesteps = torch.tensor(timesteps, device=param.device)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(b)
        if timesteps.shape != (b,):
            raise ValueError(
                f"timesteps must be [B={b}] or a scalar, got shape {tuple(timesteps.shape)}"
            )
        return timesteps.to(param.device)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> None:
        """Write weights and config to one safetensors file (atomically); `load_model` reads it."""
        save_model(self, path)

"""`mmfast sample`: generate sounding videos from a checkpoint, unconditionally or from a given
audio (audio->video) or video (video->audio) file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate mp4 clips (and PNG previews) from a checkpoint")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="training checkpoint, mmfast model file, or original .pt",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num", type=int, default=4, help="number of clips")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument(
        "--sampler", default="dpm-solver++", choices=["ddpm", "ddim", "dpm-solver", "dpm-solver++"]
    )
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--weights",
        default="ema",
        choices=["ema", "raw"],
        help="which weights of a training checkpoint",
    )
    given = p.add_mutually_exclusive_group()
    given.add_argument(
        "--condition-audio", help="audio or video file whose sound the video is made for (a2v)"
    )
    given.add_argument("--condition-video", help="video file whose sound is made (v2a)")
    p.add_argument(
        "--guidance",
        default="guided",
        choices=["guided", "replacement"],
        help="zero-shot conditioning method",
    )
    p.add_argument(
        "--guidance-scale",
        type=float,
        help="guided conditioning weight (default: the release's 3 * 2**20)",
    )
    p.add_argument(
        "--start",
        type=float,
        default=0.0,
        help="second of the conditioning file the clip starts at",
    )
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from mmfast.data import read_media, write_clip, write_preview
    from mmfast.generate import audio_rate, generate, load_model

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(args.checkpoint, args.weights).to(device)
    cfg, rate = model.config, audio_rate(model, args.fps)
    cond_video = cond_audio = None
    source = args.condition_audio or args.condition_video
    if source:
        video, audio = read_media(
            source,
            frames=cfg.video_frames,
            fps=args.fps,
            size=cfg.video_size,
            audio_rate=round(rate),
            start=args.start,
            streams=("audio",) if args.condition_audio else ("video",),
        )
        if args.condition_audio:
            if audio is None:
                raise ValueError(f"{source} has no audio track")
            cond_audio = audio
        else:
            if video is None:
                raise ValueError(f"{source} has no video track")
            cond_video = video
    videos, audios = generate(
        model,
        args.num,
        batch_size=args.batch_size,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
        condition_video=cond_video,
        condition_audio=cond_audio,
        method=args.guidance,
        scale=args.guidance_scale,
        progress=True,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(args.num):
        write_clip(out / f"sample_{i:03d}.mp4", videos[i], audios[i], fps=args.fps, audio_rate=rate)
        write_preview(out / f"sample_{i:03d}.png", videos[i], audios[i], audio_rate=rate)
    print(f"wrote {args.num} clips to {out}")
    return 0

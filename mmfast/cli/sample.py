"""`mmfast sample`: generate sounding videos from a checkpoint, unconditionally or from a given
audio (audio->video) or video (video->audio) file."""

from __future__ import annotations

import argparse

from mmfast.cli.options import (
    UsageError,
    nonnegative_float,
    nonnegative_int,
    option,
    parse_device,
    positive_float,
    positive_int,
    writable_folder,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate mp4 clips (and PNG previews) from a checkpoint")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="training checkpoint or its run folder, mmfast model file, or original .pt",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num", type=positive_int, default=4, help="number of clips")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument(
        "--sampler", default="dpm-solver++", choices=["ddpm", "ddim", "dpm-solver", "dpm-solver++"]
    )
    p.add_argument("--steps", type=positive_int, default=20)
    p.add_argument(
        "--timesteps",
        default="uniform",
        choices=["uniform", "release"],
        help="release: the original's time grids (DPM-Solver's, DDIM/DDPM's ddimN), integer "
        "model times and its order of noise draws from one generator seeded by --seed, to "
        "reproduce a release run",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0)
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
        type=nonnegative_float,
        help="guided conditioning weight (default: the release's 3 * 2**20)",
    )
    p.add_argument(
        "--start",
        type=nonnegative_float,
        default=0.0,
        help="second of the conditioning file the clip starts at",
    )
    p.add_argument("--fps", type=positive_float, default=10.0)
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    p.add_argument(
        "--sr",
        metavar="SR_CHECKPOINT",
        help="also upsample every clip with this super-resolution model (training checkpoint, run "
        "folder, model file or original .pt): sample_NNN_sr.mp4 + .png beside the others",
    )
    p.add_argument("--sr-steps", type=positive_int, default=25, help="SR sampling steps")
    p.add_argument(
        "--sr-sampler", default="ddim", choices=["ddim", "ddpm"], help="SR sampler (release: ddim)"
    )
    p.add_argument(
        "--sr-batch-size",
        type=positive_int,
        help="frames per SR model call (default: as many as fit in the device's memory)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfast.data import read_media, write_clip, write_preview
    from mmfast.generate import audio_rate, generate, load_model, upsample
    from mmfast.models import SuperResUNet

    source = args.condition_audio or args.condition_video
    flag = "--condition-audio" if args.condition_audio else "--condition-video"
    if source is None and (args.guidance_scale is not None or args.start):
        raise UsageError(
            "--guidance-scale and --start apply to --condition-audio / --condition-video only"
        )
    # Everything is checked before sampling starts; nothing is written until the clips are made.
    device = parse_device(args.device)
    with option("--checkpoint", args.checkpoint):
        model = load_model(args.checkpoint, args.weights)
    model = model.to(device)
    cfg, rate = model.config, audio_rate(model, args.fps)
    sr_model = None
    if args.sr is not None:
        with option("--sr", args.sr):
            sr_model = load_model(args.sr, args.weights, kind=SuperResUNet)
            if sr_model.config.small_size != cfg.video_size:
                raise ValueError(
                    f"it upsamples {sr_model.config.small_size}x{sr_model.config.small_size} "
                    f"frames; the base model makes {cfg.video_size}x{cfg.video_size}"
                )
        sr_model = sr_model.to(device)
    cond_video = cond_audio = None
    if source:
        with option(flag, source):
            video, audio = read_media(
                source,
                frames=cfg.video_frames,
                fps=args.fps,
                size=cfg.video_size,
                audio_rate=rate,
                start=args.start,
                streams=("audio",) if args.condition_audio else ("video",),
            )
            if args.condition_audio:
                if audio is None:
                    raise ValueError("the file has no audio track")
                cond_audio = audio
            else:
                if video is None:
                    raise ValueError("the file has no video track")
                cond_video = video
    out = writable_folder("--out", args.out)
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
        timesteps=args.timesteps,
        progress=not args.no_progress,
    )
    for i in range(args.num):
        write_clip(out / f"sample_{i:03d}.mp4", videos[i], audios[i], fps=args.fps, audio_rate=rate)
        write_preview(out / f"sample_{i:03d}.png", videos[i], audios[i], audio_rate=rate)
    print(
        f"wrote {args.num} clips to {out}: sample_000.mp4 ... sample_{args.num - 1:03d}.mp4 "
        f"({cfg.video_frames} frames of {cfg.video_size}x{cfg.video_size} at {args.fps:g} fps, "
        f"{rate} Hz audio) and a .png preview of each"
    )
    if sr_model is not None:
        high = upsample(
            sr_model,
            videos,
            sampler=args.sr_sampler,
            steps=args.sr_steps,
            seed=args.seed,
            batch_size=args.sr_batch_size,
            progress=not args.no_progress,
        )
        size = sr_model.config.large_size
        for i in range(args.num):
            name = f"sample_{i:03d}_sr"
            write_clip(out / f"{name}.mp4", high[i], audios[i], fps=args.fps, audio_rate=rate)
            write_preview(out / f"{name}.png", high[i], audios[i], audio_rate=rate)
        print(f"upsampled every clip to {size}x{size}: sample_NNN_sr.mp4 and .png in {out}")
    return 0

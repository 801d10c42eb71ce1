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
from mmfast.diffusion import NoiseOrder, NoiseSchedule, make_sampler
from mmfast.diffusion.spacing import check_discrete_timesteps
from mmfast.precision import Precision


def timesteps(text: str) -> str:
    """`--timesteps`: uniform, release or a guided-diffusion respacing string."""
    try:
        return check_discrete_timesteps(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            str(err).replace("timesteps must be", "expected")
        ) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate mp4 clips (and PNG previews) from a checkpoint")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="training checkpoint or its run folder, mmfast model file, or original .pt",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--num",
        "--clips",
        dest="num",
        type=positive_int,
        default=4,
        help="number of clips (--clips under torchrun, which refuses --num as a prefix of its "
        "--numa-binding); clip k is a function of --seed and k, the files are named by k, and "
        "clips whose files are all there are skipped",
    )
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument(
        "--sampler", default="dpm-solver++", choices=["ddpm", "ddim", "dpm-solver", "dpm-solver++"]
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="sampling steps (default 20, or as many as a respacing --timesteps gives)",
    )
    p.add_argument(
        "--timesteps",
        default="uniform",
        type=timesteps,
        help="the time grid: uniform (mmfast's); for ddpm/ddim also a guided-diffusion respacing "
        "as the release's runs used (50, ddim25, 250,200,150); release: the original's whole run "
        "(DPM-Solver's grid and integer model times, DDIM/DDPM's ddimN) in its noise order",
    )
    p.add_argument(
        "--noise-order",
        choices=[o.value for o in NoiseOrder],
        default=None,
        help="release: the original's order of noise draws (video then audio, every step) from "
        "one generator seeded by --seed, to reproduce a release run; default: release with "
        "--timesteps release, else mmfast",
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
        "--precision",
        choices=[p.value for p in Precision],
        default="fp32",
        help="the model calls under torch.autocast to fp16 or bf16 (norm statistics and the "
        "sampler's arithmetic stay fp32); fp16 on V100/T4, bf16 from A100 on",
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
    from mmfast.data import read_media
    from mmfast.generate import audio_rate, generate_to_folder
    from mmfast.models import CoupledUNet, SuperResUNet, load_model
    from mmfast.train.distributed import setup_distributed, teardown_distributed

    if args.sampler.startswith("dpm-solver") and args.timesteps not in ("uniform", "release"):
        raise UsageError(
            f"--timesteps {args.timesteps}: respacing strings are for ddpm and ddim; "
            f"{args.sampler} takes uniform or release"
        )
    if args.sr is not None:
        with option("--sr-steps", args.sr_steps):
            # The SR stage's grid (the release's ddimN) has no integer stride for some N (1, ...):
            # found here, not after the first clips are made.
            make_sampler(args.sr_sampler, timesteps="release").plan(
                NoiseSchedule.linear(), args.sr_steps
            )
    source = args.condition_audio or args.condition_video
    flag = "--condition-audio" if args.condition_audio else "--condition-video"
    if source is None and (args.guidance_scale is not None or args.start):
        raise UsageError(
            "--guidance-scale and --start apply to --condition-audio / --condition-video only"
        )
    # Everything is checked before sampling starts; nothing is written until the clips are made.
    device = parse_device(args.device)
    info = setup_distributed(device.type)  # under torchrun: a process group, a GPU per process
    if info.enabled:
        device = info.device
    with option("--checkpoint", args.checkpoint):
        model = load_model(args.checkpoint, weights=args.weights, kind=CoupledUNet)
    model = model.to(device)
    cfg, rate = model.config, audio_rate(model, args.fps)
    sr_model = None
    if args.sr is not None:
        with option("--sr", args.sr):
            sr_model = load_model(args.sr, weights=args.weights, kind=SuperResUNet)
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
    made = generate_to_folder(
        model,
        out,
        args.num,
        batch_size=args.batch_size,
        seed=args.seed,
        fps=args.fps,
        sr_model=sr_model,
        sr_options=dict(
            sampler=args.sr_sampler,
            steps=args.sr_steps,
            batch_size=args.sr_batch_size,
            precision=args.precision,
        ),
        progress=not args.no_progress,
        sampler=args.sampler,
        steps=args.steps,
        condition_video=cond_video,
        condition_audio=cond_audio,
        method=args.guidance,
        scale=args.guidance_scale,
        timesteps=args.timesteps,
        noise_order=args.noise_order,
        precision=args.precision,
    )
    teardown_distributed(info)
    if not info.is_main:
        return 0
    kept = f" ({args.num - len(made)} already there)" if len(made) < args.num else ""
    clips = "1 clip" if len(made) == 1 else f"{len(made)} clips"
    names = "sample_000.mp4" + (f" ... sample_{args.num - 1:03d}.mp4" if args.num > 1 else "")
    print(
        f"wrote {clips} to {out}{kept}: {names} ({cfg.video_frames} frames of "
        f"{cfg.video_size}x{cfg.video_size} at {args.fps:g} fps, {rate} Hz audio) and a .png "
        "preview of each"
    )
    if sr_model is not None:
        size = sr_model.config.large_size
        print(f"upsampled every clip to {size}x{size}: sample_NNN_sr.mp4 and .png in {out}")
    return 0

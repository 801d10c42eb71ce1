"""`mmfast demo`: the whole pipeline on a laptop with no data and no GPU. Trains the demo model on
the built-in synthetic audio-visual data for a bounded time, samples a few clips, writes them as
mp4 + PNG, and scores them: the A/V-sync score beside real, mismatched and noise pairs, and the
frame scores (background colour, one ball)."""

from __future__ import annotations

import argparse

from mmfast.cli.options import nonnegative_int, positive_float, positive_int, writable_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train the demo model on synthetic data for a few minutes, sample and score"
    )
    p.add_argument(
        "--minutes",
        type=positive_float,
        default=6.0,
        help="training wall time (a rerun continues the run)",
    )
    p.add_argument("--out", default="mmfast-demo", help="output folder")
    p.add_argument("--num", type=positive_int, default=8, help="clips to sample")
    p.add_argument("--steps", type=positive_int, default=20, help="DPM-Solver++ steps")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from mmfast.data import write_clip, write_preview
    from mmfast.eval.synthetic import av_sync_scores, frame_scores, reference_pairs
    from mmfast.generate import audio_rate, generate
    from mmfast.models import load_model
    from mmfast.train import get_train_config, train

    started = time.monotonic()
    out = writable_folder("--out", args.out)
    config = get_train_config("demo", max_minutes=args.minutes, seed=args.seed)
    run_dir = out / "run"
    result = train(config, run_dir, progress=not args.no_progress)
    model = load_model(result.checkpoint, weights="ema")
    cfg, fps = model.config, config.fps
    rate = audio_rate(model, fps)
    videos, audios = generate(
        model,
        args.num,
        batch_size=args.num,
        sampler="dpm-solver++",
        steps=args.steps,
        seed=args.seed,
        progress=not args.no_progress,
    )
    for i in range(args.num):
        write_clip(out / f"sample_{i:02d}.mp4", videos[i], audios[i], fps=fps, audio_rate=rate)
        write_preview(out / f"sample_{i:02d}.png", videos[i], audios[i], audio_rate=rate)

    # Real clips the run never drew (another seed), mismatched pairs and noise.
    reference = reference_pairs(
        16,
        frames=cfg.video_frames,
        size=cfg.video_size,
        audio_length=cfg.audio_length,
        fps=fps,
        seed=args.seed + 1,
    )
    rows = [("generated", videos, audios), *((k, *pair) for k, pair in reference.items())]
    print(f"\ntrained {result.step} steps; {args.num} clips in {out} (sample_NN.mp4 + .png)")
    print(
        "A/V-sync score (1 = sound follows picture, 0 = unrelated); frames: distance of the median"
        " colour from the background (0 = right), share of frames with one ball (1 = right):"
    )
    for name, v, a in rows:
        sync = av_sync_scores(v, a, fps=fps, audio_rate=rate)
        frames = frame_scores(v)
        print(
            f"  {name:<10} sync {sync.mean():+.3f} +- {sync.std(correction=0):.3f}  "
            f"background {frames.background_error.mean():.3f}  one ball "
            f"{frames.ball_frames.mean():.2f}  (n={len(sync)})"
        )
    print(f"outputs: {out} (the clips), {run_dir} (the training run; a rerun continues it)")
    print(f"demo took {(time.monotonic() - started) / 60:.1f} min")
    return 0

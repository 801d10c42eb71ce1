"""`mmfast demo`: the whole pipeline on a laptop with no data and no GPU. Trains the tiny model on
the built-in synthetic audio-visual data for a bounded time, samples a few clips, writes them as
mp4 + PNG, and scores their audio-visual sync beside real and mismatched synthetic pairs."""

from __future__ import annotations

import argparse

from mmfast.cli.options import nonnegative_int, positive_float, positive_int, writable_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train the tiny model on synthetic data for a few minutes, sample and score"
    )
    p.add_argument(
        "--minutes",
        type=positive_float,
        default=3.0,
        help="training wall time (a rerun continues the run)",
    )
    p.add_argument("--out", default="mmfast-demo", help="output folder")
    p.add_argument("--num", type=positive_int, default=4, help="clips to sample")
    p.add_argument("--steps", type=positive_int, default=20, help="DPM-Solver++ steps")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def sync_scores(videos, audios, fps: float, rate: float) -> list[float]:
    from mmfast.data.synthetic import av_sync_score

    return [av_sync_score(v, a, fps=fps, audio_rate=rate) for v, a in zip(videos, audios)]


def run(args: argparse.Namespace) -> int:
    import statistics

    from mmfast.data import write_clip, write_preview
    from mmfast.data.synthetic import SyntheticAVDataset
    from mmfast.generate import audio_rate, generate, load_model
    from mmfast.train import get_train_config, train

    out = writable_folder("--out", args.out)
    # The tiny preset's EMA is warmed up: a few hundred CPU steps are too few for a fixed rate.
    config = get_train_config(
        "tiny", max_minutes=args.minutes, seed=args.seed, log_every=5, checkpoint_every=100
    )
    result = train(config, out / "run", progress=not args.no_progress)
    model = load_model(result.checkpoint, "ema")
    cfg, fps = model.config, config.fps
    rate = audio_rate(model, fps)
    videos, audios = generate(
        model,
        args.num,
        sampler="dpm-solver++",
        steps=args.steps,
        seed=args.seed,
        progress=not args.no_progress,
    )
    for i in range(args.num):
        write_clip(out / f"sample_{i:02d}.mp4", videos[i], audios[i], fps=fps, audio_rate=rate)
        write_preview(out / f"sample_{i:02d}.png", videos[i], audios[i], audio_rate=rate)

    # Real clips the run never drew (another seed), and the same clips with their sounds rotated.
    real = SyntheticAVDataset(
        16,
        frames=cfg.video_frames,
        size=cfg.video_size,
        audio_length=cfg.audio_length,
        fps=fps,
        seed=args.seed + 1,
    )
    real_v, real_a = zip(*(real[i] for i in range(len(real))))
    shuffled_a = real_a[1:] + real_a[:1]
    rows = [
        ("generated", sync_scores(videos, audios, fps, rate)),
        ("real", sync_scores(real_v, real_a, fps, rate)),
        ("shuffled", sync_scores(real_v, shuffled_a, fps, rate)),
    ]
    print(f"\ntrained {result.step} steps; {args.num} clips in {out} (sample_NN.mp4 + .png)")
    print("A/V-sync score (1 = sound follows picture, 0 = unrelated):")
    for name, scores in rows:
        spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
        print(f"  {name:<10} {statistics.fmean(scores):+.3f} +- {spread:.3f}  (n={len(scores)})")
    print(f"outputs: {out} (the clips), {out / 'run'} (the training run; a rerun continues it)")
    return 0

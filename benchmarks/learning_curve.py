"""Learning curve of a training preset on the synthetic task: train for N minutes of wall time and,
at fixed training times, sample clips from the EMA weights and score them.

    python benchmarks/learning_curve.py --preset demo --minutes 6 --eval-every 1 \
        --train prediction=v --train loss_weighting=min-snr --name v-minsnr

Each evaluation samples `--num` clips (DPM-Solver++, `--steps`, a fixed seed, so every point of
every curve sees the same initial noise) and records the synthetic A/V-sync score (mean and
spread), the frame scores (median colour against the background, fraction of frames with one ball)
and the training loss and rate. Evaluation time is not training time: the run stops, is scored
and resumes from its checkpoint. Results go to `<out>/<name>.json`; `plot_learning_curves.py`
draws every JSON of a folder. Wall-clock minutes mean something only on a quiet machine: run one
curve at a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from mmfast.eval.synthetic import av_sync_scores, frame_scores, reference_pairs
from mmfast.generate import audio_rate, generate
from mmfast.models import CoupledUNet, load_model
from mmfast.train import get_train_config, train
from mmfast.train.trainer import LOG


def parse_value(text: str):
    """`key=value` values: JSON (numbers, true/false, lists as tuples), else the string."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def pairs(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {item!r}")
        out[key.replace("-", "_")] = parse_value(value)
    return out


def score(run_dir: Path, fps: float, num: int, steps: int, seed: int) -> dict:
    """Sample `num` clips from the run's EMA weights and score them."""
    model = load_model(run_dir, weights="ema")
    videos, audios = generate(model, num, batch_size=num, steps=steps, seed=seed)
    sync = av_sync_scores(videos, audios, fps=fps, audio_rate=audio_rate(model, fps)).tolist()
    frames = frame_scores(videos)
    return dict(
        sync_mean=statistics.fmean(sync),
        sync_std=statistics.pstdev(sync),
        background_error=frames.background_error.mean().item(),
        ball_frames=frames.ball_frames.mean().item(),
        video_mean=videos.mean().item(),
    )


def reference_rows(model_cfg, fps: float, num: int) -> dict:
    """The score of real pairs, shuffled pairs and noise at the model's sizes (held-out seed)."""
    refs = reference_pairs(
        num,
        frames=model_cfg.video_frames,
        size=model_cfg.video_size,
        audio_length=model_cfg.audio_length,
        fps=fps,
        seed=12345,
    )
    rate = model_cfg.audio_length * fps / model_cfg.video_frames
    rows = {k: av_sync_scores(v, a, fps=fps, audio_rate=rate) for k, (v, a) in refs.items()}
    return {k: dict(mean=v.mean().item(), std=v.std(correction=0).item()) for k, v in rows.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="demo")
    p.add_argument("--minutes", type=float, default=6.0, help="training wall time in all")
    p.add_argument("--eval-every", type=float, default=1.0, help="minutes of training per point")
    p.add_argument("--train", action="append", default=[], help="TrainConfig field=value")
    p.add_argument("--model", action="append", default=[], help="model config field=value")
    p.add_argument("--num", type=int, default=16, help="clips per evaluation")
    p.add_argument("--steps", type=int, default=20, help="DPM-Solver++ steps")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--name", default=None, help="result name (default: from the options)")
    p.add_argument("--out", default="benchmarks/results/learning-curves")
    p.add_argument("--run-dir", default=None, help="training run folder (default: a temp one)")
    p.add_argument(
        "--via-cli",
        action="store_true",
        help="train each chunk with `mmfast train --preset <preset> --minutes <chunk>` (no "
        "--train/--model options): the run is then one a user can repeat",
    )
    args = p.parse_args()

    train_options, model_options = pairs(args.train), pairs(args.model)
    if args.via_cli and (train_options or model_options):
        raise SystemExit("--via-cli trains the preset as it is: no --train/--model options")
    config = get_train_config(args.preset, **train_options)
    if model_options:
        config = config.replace(
            model_overrides=tuple({**dict(config.model_overrides), **model_options}.items())
        )
    name = args.name or "-".join(
        [args.preset] + [f"{k}={v}" for k, v in {**train_options, **model_options}.items()]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import tempfile

    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="mmfast-curve-"))
    model_cfg = config.model_config()
    record = dict(
        name=name,
        preset=args.preset,
        train_options=train_options,
        model_options=model_options,
        train_config=json.loads(config.to_json()),
        model_config=model_cfg.to_dict(),
        parameters=sum(p.numel() for p in CoupledUNet(model_cfg).parameters()),
        machine=dict(
            processor=platform.processor() or platform.machine(),
            threads=torch.get_num_threads(),
            torch=torch.__version__,
        ),
        evaluation=dict(num=args.num, sampler="dpm-solver++", steps=args.steps, seed=args.seed),
        reference=reference_rows(model_cfg, config.fps, max(args.num, 16)),
        points=[],
    )
    trained = 0.0
    while trained < args.minutes - 1e-9:
        chunk = min(args.eval_every, args.minutes - trained)
        started = time.monotonic()
        if args.via_cli:
            command = [sys.executable, "-m", "mmfast", "train", "--preset", args.preset]
            command += ["--minutes", f"{chunk:g}", "--out", str(run_dir), "--no-progress"]
            subprocess.run(command, check=True)
            trained += (time.monotonic() - started) / 60
            log = [json.loads(x) for x in (run_dir / LOG).read_text().splitlines()]
            step, loss, rate = log[-1]["step"], log[-1]["loss"], log[-1]["samples_per_s"]
            record["command"] = " ".join(["mmfast", *command[3:]])
        else:
            result = train(config.replace(max_minutes=chunk), run_dir, progress=False)
            trained += (time.monotonic() - started) / 60
            step, loss, rate = result.step, result.last_loss, result.samples_per_second
        started = time.monotonic()
        point = dict(
            minutes=round(trained, 3),
            step=step,
            loss=loss,
            samples_per_s=rate,
            **score(run_dir, config.fps, args.num, args.steps, args.seed),
        )
        point["eval_seconds"] = round(time.monotonic() - started, 1)
        record["points"].append(point)
        print(json.dumps(point), flush=True)
        (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()

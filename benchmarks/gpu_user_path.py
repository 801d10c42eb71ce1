"""The GPU check's user-path stage: what a user runs, at the released size, through the public API.

    python benchmarks/gpu_user_path.py RESULTS.jsonl [--preset mmdiffusion-64] [--sr-preset sr-256]
        [--steps 6] [--batch 4] [--no-compile]

In order (each result is written the moment it exists, so a stage cut at its time limit keeps the
earlier ones):
1. training steps through `mmfast.train.train` (the trainer: AdamW, EMA, clipping, logging, the
   final checkpoint) with fp16 autocast + GradScaler, then bf16, eager;
2. a DPM-Solver++ sampling run through `mmfast.generate.generate` (fp32 weights, as `mmfast sample`
   loads them; then the same with precision="bf16", as `mmfast sample --precision bf16`);
3. an SR upsample batch through `mmfast.generate.upsample` with the frames per call the model's
   memory estimate gives (`sr_batch_size`), the estimate set beside the measured peak;
4. the same training steps compiled (torch.compile, Inductor meeting the model for the first time):
   bf16, then fp16, each step-1 loss compared with the eager run's.
Each record has its wall time, samples/s and peak memory (`torch.cuda.max_memory_allocated`).

Dropout is off in the training runs so that eager and compiled runs compute the same function
(Inductor draws its own dropout masks); everything else is the preset's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mmfast.generate import generate, sr_batch_size, upsample
from mmfast.models import CoupledUNet, SuperResUNet
from mmfast.train import get_train_config, train

# Relative difference allowed between the compiled and the eager step-1 loss: the same inputs and
# weights, different kernels and fusion orders, in the run's precision.
COMPILE_TOLERANCE = {"fp16": 2e-2, "bf16": 5e-2, "fp32": 1e-3}


class Results:
    """Appends one JSON object a line, flushed, and echoes it."""

    def __init__(self, path: str):
        self.path = path

    def write(self, record: dict) -> None:
        record = {"kind": "user_path", **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")
        print(json.dumps(record, default=float), flush=True)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def _scratch() -> Path:
    # The trainer writes its checkpoint at the end: RAM-backed where there is such a folder.
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="mmfast-user-path-", dir=base))


def train_steps(args, precision: str, compiled: bool) -> dict:
    device = _device()
    config = get_train_config(
        args.preset,
        precision=precision,
        compile=compiled,
        steps=args.steps,
        batch_size=args.batch,
        log_every=1,
        checkpoint_every=10**9,
        model_overrides=(("dropout", 0.0),),
    )
    run_dir = _scratch()
    _reset_peak(device)
    start = time.perf_counter()
    result = train(config, run_dir, progress=False)
    wall = time.perf_counter() - start
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in log[1:]]  # step 1 holds the warm-up (and the compile)
    record = {
        "what": "train",
        "preset": args.preset,
        "precision": precision,
        "compiled": compiled,
        "batch": args.batch,
        "steps": result.step,
        "wall_s": wall,
        "first_step_s": args.batch / log[0]["samples_per_s"],
        "samples_per_s": statistics.median(rates) if rates else None,
        "losses": [r["loss"] for r in log],
        "peak_gib": _peak_gib(device),
        "finite": all(math.isfinite(r["loss"]) for r in log),
    }
    for path in run_dir.iterdir():
        path.unlink()
    run_dir.rmdir()
    del result
    return record


def sampling(args, precision: str) -> dict:
    """fp32 weights, as `mmfast sample` loads them, the model calls in `precision`."""
    device = _device()
    torch.manual_seed(0)
    model = CoupledUNet(args.preset).to(device)
    run = lambda steps: generate(
        model,
        args.batch,
        batch_size=args.batch,
        sampler="dpm-solver++",
        steps=steps,
        precision=precision,
    )
    run(1)  # kernels compiled, memory warm
    _reset_peak(device)
    start = time.perf_counter()
    video, audio = run(args.sample_steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {
        "what": "sample",
        "preset": args.preset,
        "sampler": "dpm-solver++",
        "steps": args.sample_steps,
        "precision": precision,
        "clips": args.batch,
        "wall_s": wall,
        "samples_per_s": args.batch / wall,
        "peak_gib": _peak_gib(device),
        "finite": bool(torch.isfinite(video).all() and torch.isfinite(audio).all()),
        "video_shape": list(video.shape),
        "audio_shape": list(audio.shape),
    }


def super_resolution(args) -> dict:
    device = _device()
    torch.manual_seed(0)
    model = SuperResUNet(args.sr_preset).to(device)
    cfg = model.config
    param = next(model.parameters())
    per_frame = model.inference_bytes_per_image(param.dtype)
    batch = sr_batch_size(model, device, param.dtype)
    frames_per_clip = 16 if args.sr_preset == "sr-256" else 4
    clips = min(max(1, batch // frames_per_clip), args.sr_max_clips)
    batch = min(batch, clips * frames_per_clip)
    gen = torch.Generator().manual_seed(1)
    low = torch.rand(clips, frames_per_clip, 3, cfg.small_size, cfg.small_size, generator=gen)
    low = low * 2 - 1
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    _reset_peak(device)
    start = time.perf_counter()
    high = upsample(model, low, steps=args.sr_steps, batch_size=batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    peak = _peak_gib(device)
    estimate = (weight_bytes + batch * per_frame) / 2**30
    return {
        "what": "sr_upsample",
        "preset": args.sr_preset,
        "sampler": "ddim",
        "steps": args.sr_steps,
        "frames": clips * frames_per_clip,
        "frames_per_call": batch,
        "wall_s": wall,
        "frames_per_s": clips * frames_per_clip / wall,
        "peak_gib": peak,
        "estimate_gib": estimate,
        "peak_over_estimate": None if peak is None else peak / estimate,
        "finite": bool(torch.isfinite(high).all()),
        "shape": list(high.shape),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results")
    parser.add_argument("--preset", default="mmdiffusion-64")
    parser.add_argument("--sr-preset", default="sr-256")
    parser.add_argument("--steps", type=int, default=6, help="training steps per run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--sr-steps", type=int, default=2)
    parser.add_argument("--sr-max-clips", type=int, default=4)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--precisions", default="fp16,bf16")
    parser.add_argument(
        "--imports-only",
        action="store_true",
        help="record that this module's imports (the trainer, generation, the models) work, and stop",
    )
    args = parser.parse_args(argv)
    out = Results(args.results)
    if args.imports_only:
        out.write({"what": "imports", "ok": True, "skipped": "no run: released sizes need a GPU"})
        return 0
    device = _device()
    out.write(
        {
            "what": "device",
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "capability": list(torch.cuda.get_device_capability())
            if device.type == "cuda"
            else None,
        }
    )
    precisions = args.precisions.split(",")
    eager: dict[str, dict] = {}
    steps = [("train", p, False) for p in precisions]
    steps += [("sample", "fp32"), ("sample", "bf16"), ("sr",)]
    if not args.no_compile:
        steps += [("train", p, True) for p in reversed(precisions)]
    failures = 0
    for step in steps:
        try:
            if step[0] == "train":
                record = train_steps(args, step[1], step[2])
                ok = record["finite"]
                if step[2] and step[1] in eager:
                    ref, got = eager[step[1]]["losses"][0], record["losses"][0]
                    record["step1_loss_eager"] = ref
                    record["step1_rel_diff"] = abs(got - ref) / max(abs(ref), 1e-12)
                    ok = ok and record["step1_rel_diff"] <= COMPILE_TOLERANCE[step[1]]
                elif not step[2]:
                    eager[step[1]] = record
            elif step[0] == "sample":
                record = sampling(args, step[1])
                ok = record["finite"]
            else:
                record = super_resolution(args)
                ok = record["finite"]
            record["ok"] = bool(ok)
        except Exception as err:  # noqa: BLE001 - recorded; the next part still runs
            record = {"what": step[0], "args": [str(s) for s in step[1:]], "ok": False}
            record["error"] = repr(err)[-2000:]
            if device.type == "cuda":
                record["peak_gib"] = _peak_gib(device)
        failures += not record["ok"]
        out.write(record)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

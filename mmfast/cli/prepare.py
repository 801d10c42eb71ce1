"""`mmfast prepare --data FOLDER --out STORE`: decode a video folder once into a clip store that
`mmfast train --data STORE` reads without decoding (resumes, updates, splits under torchrun)."""

from __future__ import annotations

import argparse

from mmfast.cli.options import (
    UsageError,
    nonnegative_float,
    nonnegative_int,
    option,
    positive_float,
    positive_int,
    writable_folder,
)

# The clip of the released models (mmdiffusion-64): used when neither --preset nor a size is given.
DEFAULT_PRESET = "mmdiffusion-64"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="decode a folder of videos once into a clip store for fast training",
    )
    p.add_argument("--data", required=True, help="folder of .mp4/.mkv/.webm/.avi files")
    p.add_argument(
        "--out",
        required=True,
        help="the clip store folder (created; a rerun resumes and decodes only new files)",
    )
    p.add_argument(
        "--preset",
        help=f"training preset whose clips to make (default {DEFAULT_PRESET}; train-sr presets "
        "make one large bicubic frame per clip); or give the clip with the next four options",
    )
    p.add_argument("--frames", type=positive_int, help="frames per clip")
    p.add_argument("--fps", type=positive_float, help="frames per second of a clip")
    p.add_argument("--size", type=positive_int, help="frame side in pixels")
    p.add_argument("--audio-rate", type=positive_int, dest="audio_rate", help="sound sample rate")
    p.add_argument(
        "--resize",
        choices=["letterbox", "center-crop"],
        default="letterbox",
        help="how frames are fitted to the square (as mmfast train --resize)",
    )
    p.add_argument(
        "--workers",
        type=nonnegative_int,
        help="decoding processes (default: one per core, shared by torchrun's processes; 0 "
        "decodes in this process)",
    )
    p.add_argument(
        "--min-fps",
        type=nonnegative_float,
        default=0.0,
        dest="min_fps",
        help="skip sources below this frame rate",
    )
    p.add_argument(
        "--min-size",
        type=nonnegative_int,
        default=0,
        dest="min_size",
        help="skip sources whose shorter side is below this many pixels",
    )
    p.add_argument(
        "--keep-silent",
        action="store_true",
        dest="keep_silent",
        help="keep sound tracks of digital silence (peak below 2^-15; skipped by default)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="only part I of N (0 <= I < N) for a job array; the last part to finish writes the "
        "index",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text}: expected I/N, e.g. 0/8") from None
    if not 0 <= i < n:
        raise UsageError(f"--shard {text}: expected 0 <= I < N")
    return i, n


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from mmfast.data import prepare
    from mmfast.data.prepare_store import StoreMismatch
    from mmfast.train import TRAIN_PRESETS, get_train_config
    from mmfast.train.tasks import task_for

    explicit = {k: getattr(args, k) for k in ("frames", "fps", "size", "audio_rate")}
    given = [f"--{k.replace('_', '-')}" for k, v in explicit.items() if v is not None]
    if args.preset is not None and given:
        raise UsageError(f"--preset {args.preset}: give either a preset or {', '.join(given)}")
    preset = args.preset or DEFAULT_PRESET
    if preset not in TRAIN_PRESETS:
        raise UsageError(f"--preset {preset}: expected one of {', '.join(TRAIN_PRESETS)}")
    config = get_train_config(preset)
    clip = {"fps": config.fps, **task_for(config).clip_shape(config, config.model_config())}
    clip.update({k: v for k, v in explicit.items() if v is not None})
    if not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    shard = _shard(args.shard)
    out = writable_folder("--out", args.out)
    workers = args.workers
    if workers is None:  # the cores, shared by the processes torchrun starts on this machine
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        workers = workers if workers > 1 else 0
    with option("--data", args.data):
        try:
            result = prepare(
                args.data,
                out,
                resize=args.resize,
                keep_silent=args.keep_silent,
                min_fps=args.min_fps,
                min_size=args.min_size,
                workers=workers,
                shard=shard,
                progress=not args.no_progress,
                **clip,
            )
        except StoreMismatch as err:
            raise UsageError(f"--out {err}") from None
    if os.environ.get("RANK", "0") != "0":
        return 0
    dropped = sum(len(v) for v in result.dropped.values())
    kept = result.files - result.decoded
    print(
        f"{out}: {result.clips} clips decoded from {result.decoded} of {result.files} files "
        f"in {result.seconds:.1f} s ({len(result.skipped)} skipped, {dropped} damaged clips "
        "dropped" + (f"; the other {kept} were in the store already)" if kept else ")")
    )
    if result.index_written:
        from mmfast.data import ClipStore

        store = ClipStore(out)
        print(
            f"index written: {len(store)} clips of {store.frames} frames at {store.fps:g} fps, "
            f"{store.size}x{store.size}, {store.audio_length} samples at {store.audio_rate} Hz; "
            f"{len(store.skipped)} files skipped (see {out / 'index.json'})"
        )
    else:
        print("index not written yet: other parts are still to come (run the other --shard parts)")
    return 0

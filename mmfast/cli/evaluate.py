"""`mmfast eval`: FVD, KVD and FAD of generated clips against a reference folder."""

from __future__ import annotations

import argparse
import json
import textwrap

from mmfast.cli.options import (
    UsageError,
    nonnegative_int,
    parse_device,
    positive_int,
    writable_file,
)
from mmfast.eval.protocol import RELEASE_FLAWS


def add_parser(sub: argparse._SubParsersAction) -> None:
    flaws = "\n".join(
        textwrap.fill(f, 88, initial_indent="  - ", subsequent_indent="    ") for f in RELEASE_FLAWS
    )
    p = sub.add_parser(
        "eval",
        help="FVD, KVD and FAD of a folder of generated clips against a reference folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "FVD and KVD (I3D logits) and FAD (VGGish; AudioCLIP under --protocol mmdiffusion) "
            "between two folders of clips: each number whose weight file is given (--i3d alone: "
            "FVD and KVD; --vggish alone: FAD); the JSON says what was not computed and why. "
            "Weight files are never downloaded. Under torchrun the clips are split over the "
            "processes, with the numbers of one process.\n\n"
            "--protocol default: a held-out reference folder (give the test split), clips picked "
            "by --seed, an error when a side has fewer than --num clips, both sides letterboxed "
            "to the generated clips' size and read at 16 kHz through one resampler, extractors in "
            "eval mode, float64 distances, KVD over 100 seeded subsets (mean and spread).\n\n"
            "--protocol mmdiffusion reproduces the release's evaluation, flaws included:\n" + flaws
        ),
    )
    p.add_argument("--generated", required=True, help="folder of generated clips (mp4, ...)")
    p.add_argument("--reference", required=True, help="folder of reference clips (held out)")
    p.add_argument("--protocol", default="default", choices=["default", "mmdiffusion"])
    p.add_argument("--i3d", help="I3D weights, i3d_pretrained_400.pt (FVD, KVD)")
    p.add_argument("--vggish", help="VGGish weights: torchaudio's vggish.pt or torchvggish's .pth")
    p.add_argument("--audioclip", help="AudioCLIP-Full-Training.pt (FAD of --protocol mmdiffusion)")
    p.add_argument(
        "--num",
        "--clips",
        dest="num",
        type=positive_int,
        default=2048,
        help="clips per side (--clips under torchrun, which refuses --num as a prefix of its "
        "--numa-binding)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help="which clips are picked")
    p.add_argument(
        "--size",
        type=positive_int,
        help="frame size both sides are letterboxed to (default: the generated clips' own; "
        "mmdiffusion: 64)",
    )
    p.add_argument(
        "--sync",
        action="store_true",
        help="also the synthetic task's A/V-sync score (for clips of `mmfast demo` / the "
        "synthetic dataset)",
    )
    p.add_argument(
        "--cache", help="folder for cached reference features (default ~/.cache/mmfast/eval)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument(
        "--batch-size", type=positive_int, default=8, help="clips per extractor call (default 8)"
    )
    p.add_argument(
        "--device",
        help="cpu, cuda, cuda:1, ... (default: cuda if available; under torchrun each process "
        "takes its local rank's GPU)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="results file (.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmfast.files import atomic_path
    from mmfast.train.distributed import setup_distributed, teardown_distributed

    if args.num < 2:
        raise UsageError(f"--num {args.num}: a covariance needs at least 2 clips per side")
    for name, folder in (("--generated", args.generated), ("--reference", args.reference)):
        if not Path(folder).is_dir():
            raise UsageError(f"{name} {folder}: no such folder")
    if Path(args.generated).resolve() == Path(args.reference).resolve():
        raise UsageError("--generated and --reference are the same folder")
    if args.protocol == "mmdiffusion" and args.vggish:
        raise UsageError("--vggish: --protocol mmdiffusion measures FAD with --audioclip")
    if args.protocol == "default" and args.audioclip:
        raise UsageError("--audioclip: the default protocol measures FAD with --vggish")
    out = writable_file("--out", args.out)
    device = parse_device(args.device)
    info = setup_distributed(device.type)
    try:
        result = _evaluate(args, info.device if info.enabled else device)
    finally:
        teardown_distributed(info)
    if not info.is_main:
        return 0
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    numbers = []
    if result["fvd"] is not None:
        kvd = result["kvd"]
        spread = f" +- {kvd['std']:.4g}" if kvd["subsets"] else ""
        numbers += [f"FVD {result['fvd']:.2f}", f"KVD {kvd['mean']:.4g}{spread}"]
    if result["fad"] is not None:
        numbers.append(f"FAD {result['fad']:.4g}")
    print("  ".join(numbers) + f"  ({result['num']} clips per side, protocol {result['protocol']})")
    for number, why in result["not_computed"].items():
        print(f"{number.upper()} not computed: {why}")
    if "sync" in result:
        s = result["sync"]
        print(
            f"A/V sync: generated {s['generated']:+.3f}, reference {s['reference']:+.3f}, "
            f"reference shuffled {s['reference_shuffled']:+.3f}"
        )
    print(f"wrote {out}")
    return 0


def _evaluate(args: argparse.Namespace, device) -> dict:
    from mmfast.eval.evaluate import evaluate

    return evaluate(
        args.generated,
        args.reference,
        protocol=args.protocol,
        i3d=args.i3d,
        vggish=args.vggish,
        audioclip=args.audioclip,
        num=args.num,
        seed=args.seed,
        size=args.size,
        sync=args.sync,
        cache_dir=False if args.no_cache else args.cache,
        device=device,
        progress=not args.no_progress,
        batch_size=args.batch_size,
    )

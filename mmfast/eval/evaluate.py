"""`evaluate`: FVD, KVD and FAD between a folder of generated clips and a reference folder."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from pathlib import Path

import torch
from torch import Tensor

from mmfast.eval.clips import ClipPick, folder_digest, frame_size, pick_clips, read_clips
from mmfast.eval.distances import (
    frechet_distance,
    frechet_distance_release,
    gaussian_stats,
    kernel_distance,
)
from mmfast.eval.features import audioclip_features, vggish_features, video_features
from mmfast.eval.protocol import PROTOCOLS, Protocol
from mmfast.eval.weights import WeightFileError, require_file
from mmfast.ranks import from_rank0, gather_to_rank0, rank_and_world

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmfast" / "eval"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The numbers each extractor's features give.
NUMBERS = {"i3d": ("fvd", "kvd"), "vggish": ("fad",), "audioclip": ("fad",)}


def _weight_files(
    protocol: Protocol, i3d, vggish, audioclip
) -> tuple[dict[str, Path], dict[str, str]]:
    """The extractor files given, each checked to exist before any work, and for each number
    that a missing file rules out, why. At least one extractor is needed."""
    from mmfast.eval.audioclip import AUDIOCLIP_FILE, AUDIOCLIP_SOURCE
    from mmfast.eval.i3d import I3D_FILE, I3D_SOURCE
    from mmfast.eval.vggish import VGGISH_FILE, VGGISH_SOURCE

    audio = {
        "vggish": (vggish, f"VGGish ({VGGISH_FILE})", "--vggish", VGGISH_SOURCE),
        "audioclip": (audioclip, f"AudioCLIP ({AUDIOCLIP_FILE})", "--audioclip", AUDIOCLIP_SOURCE),
    }
    key = protocol.audio_extractor
    other = "audioclip" if key == "vggish" else "vggish"
    if audio[other][0] is not None:
        raise ValueError(
            f"{audio[other][2]}: protocol {protocol.name!r} measures FAD with {audio[key][2]}"
        )
    wanted = {"i3d": (i3d, f"I3D ({I3D_FILE})", "--i3d", I3D_SOURCE), key: audio[key]}
    if all(path is None for path, *_ in wanted.values()):
        options = " or ".join(
            f"{what} with {option} ({'/'.join(NUMBERS[k]).upper()}; from {source})"
            for k, (_, what, option, source) in wanted.items()
        )
        raise WeightFileError(f"nothing to measure: pass {options}; mmfast never downloads weights")
    files, not_computed = {}, {}
    for k, (path, what, option, source) in wanted.items():
        if path is None:
            for number in NUMBERS[k]:
                not_computed[number] = f"no {what} given ({option}; from {source})"
        else:
            files[k] = require_file(path, what=what, option=option, source=source)
    return files, not_computed


def _load_extractors(
    files: dict[str, Path], protocol: Protocol, device: torch.device
) -> dict[str, torch.nn.Module]:
    models = {}
    if "i3d" in files:
        from mmfast.eval.i3d import load_i3d

        models["i3d"] = load_i3d(files["i3d"], bn_eps=protocol.i3d_bn_eps)
    if "vggish" in files:
        from mmfast.eval.vggish import load_vggish

        models["vggish"] = load_vggish(files["vggish"])
    if "audioclip" in files:
        from mmfast.eval.audioclip import load_audioclip_audio

        models["audioclip"] = load_audioclip_audio(files["audioclip"])
    return {k: m.to(device) for k, m in models.items()}


def _batch_features(
    videos: Tensor,
    audios: Tensor,
    protocol: Protocol,
    models: dict[str, torch.nn.Module],
    sync: bool,
) -> dict[str, Tensor]:
    """One batch of clips, videos [B, F, 3, H, W] and audios [B, 1, L] -> what the extractors
    give: "video" [B, 400], "audio" [B * n, 128] (VGGish) or "wave" [B, 1, L] (AudioCLIP, which
    runs over all clips at once), and with `sync` the heights "seen" [B, F] and "heard" [B, F]."""
    out = {}
    if "i3d" in models:
        out["video"] = video_features(models["i3d"], videos, protocol)
    if "vggish" in models:
        out["audio"] = vggish_features(models["vggish"], audios)
    elif "audioclip" in models:
        out["wave"] = audios
    if sync:
        from mmfast.eval.synthetic import heights_from_audio, heights_from_video

        out["seen"] = heights_from_video(videos)
        out["heard"] = heights_from_audio(
            audios[:, 0], videos.shape[1], fps=protocol.fps, audio_rate=protocol.audio_rate
        )
    return out


def _side_features(
    pick: ClipPick,
    protocol: Protocol,
    size: int,
    models: dict[str, torch.nn.Module],
    sync: bool,
    label: str,
    progress: bool,
    batch_size: int,
) -> dict[str, Tensor] | None:
    """One folder's picked clips -> {"video": [N, 400], "audio": [M, D]} (those the extractors
    give) and, with `sync`, "sync" [N] and "sync_shuffled" [N] (each clip's picture with the next
    clip's sound). On rank 0; None on the other ranks.

    The clips go in batches of `batch_size`, batch b to rank b % world, and rank 0 puts the
    batches back in order, so the numbers do not depend on the number of processes."""
    rank, world = rank_and_world()
    batches = [pick.windows[i : i + batch_size] for i in range(0, len(pick.windows), batch_size)]
    mine = list(range(rank, len(batches), world))
    # Each rank gets its own spares, so that a file that fails to decode is never replaced by
    # the same clip on two ranks.
    share = dataclasses.replace(
        pick,
        windows=[w for b in mine for w in batches[b]],
        spare=pick.spare[rank::world],
        skipped={},
    )
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        desc = f"{label} clips" + (f" (rank 0 of {world})" if world > 1 else "")
        bar = tqdm(total=len(share.windows), desc=desc, unit="clip", dynamic_ncols=True)
    done, error = [], None
    try:
        clips = read_clips(share, protocol, size)
        for b in mine:
            videos, audios = zip(*itertools.islice(clips, len(batches[b])))
            done.append(
                (
                    b,
                    _batch_features(
                        torch.stack(videos), torch.stack(audios), protocol, models, sync
                    ),
                )
            )
            if bar is not None:
                bar.update(len(videos))
    except Exception as err:  # raised on every rank below, so that none waits for this one
        error = err
    finally:
        if bar is not None:
            bar.close()
    gathered = gather_to_rank0((done, share.skipped, error))

    def first_error() -> None:
        for *_, err in gathered:
            if err is not None:
                raise err

    from_rank0(first_error)
    if gathered is None:
        return None
    parts = sorted((part for shares, *_ in gathered for part in shares), key=lambda part: part[0])
    for _, skipped, _ in gathered:
        pick.skipped.update(skipped)
    feats = {k: torch.cat([f[k] for _, f in parts]) for k in parts[0][1]}
    out = {k: feats[k] for k in ("video", "audio") if k in feats}
    if "wave" in feats:  # with batch statistics, in the pick's order on one process
        out["audio"] = audioclip_features(models["audioclip"], feats["wave"], protocol)
    if sync:
        from mmfast.eval.synthetic import concordance

        out["sync"] = concordance(feats["seen"], feats["heard"])
        out["sync_shuffled"] = concordance(feats["seen"], feats["heard"].roll(-1, 0))
    return out


def _cache_key(protocol, reference, num, seed, size, hashes, sync) -> str:
    fields = {
        "format": CACHE_FORMAT,
        "folder": folder_digest(reference),
        "protocol": dataclasses.asdict(protocol),
        "num": num,
        "seed": seed,
        "size": size,
        "weights": hashes,
        "sync": sync,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _load_cached(path: Path) -> tuple[dict[str, Tensor], dict] | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            feats = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta = json.loads(f.metadata()["pick"])
    except Exception:  # a damaged cache is recomputed, never trusted
        return None
    return feats, meta


def _save_cached(path: Path, feats: dict[str, Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    from mmfast.files import atomic_path

    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in feats.items()}, str(tmp), {"pick": json.dumps(meta)}
        )


def _pick_meta(pick: ClipPick) -> dict:
    return {
        "folder": str(pick.folder),
        "clips_available": pick.available,
        "clips_measured": len(pick.windows),
        "repeated": pick.repeated,
        "files_skipped": len(pick.skipped),
    }


def evaluate(
    generated: str | Path,
    reference: str | Path,
    *,
    protocol: str = "default",
    i3d: str | Path | None = None,
    vggish: str | Path | None = None,
    audioclip: str | Path | None = None,
    num: int = 2048,
    seed: int = 0,
    size: int | None = None,
    sync: bool = False,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    batch_size: int = 8,
) -> dict:
    """FVD, KVD and FAD of the clips under `generated` against those under `reference`.

    `protocol` "default" (mmfast's) or "mmdiffusion" (the release's, flaws included; see
    `mmfast.eval.protocol`). Each number is computed when its extractor's file is given (FVD and
    KVD: `i3d`; FAD: `vggish`, or `audioclip` under "mmdiffusion"); the result's "not_computed"
    says why a number is missing (null). The files are checked before any work; nothing is
    downloaded. `size`: the frame size both sides are letterboxed to (default: the generated
    clips' own; the release's protocol: 64). With `sync`, the synthetic task's A/V-sync score of
    both sides. The reference's features are cached under `cache_dir` (default
    ~/.cache/mmfast/eval; `cache_dir=False` disables it), keyed by the folder's files, the
    protocol, N, the seed, the size and the weight files. `batch_size` clips go through an
    extractor at once.

    Under torchrun (a process group initialised, e.g. by `mmfast eval`), the clips are split over
    the ranks in batches and gathered on rank 0, with the numbers of one process; every rank
    returns the same dict. Returns a JSON-ready dict.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    proto = PROTOCOLS[protocol]
    if num < 2:
        raise ValueError(f"num must be at least 2 (a covariance needs two clips), got {num}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    files, not_computed = _weight_files(proto, i3d, vggish, audioclip)
    hashes = {k: sha256_of(p) for k, p in files.items()}

    def plan():  # on rank 0: the release's unseeded shuffle is drawn once for all ranks
        side = size or proto.size or frame_size(generated)
        picks = {
            "generated": pick_clips(generated, num, proto, seed),
            "reference": pick_clips(reference, num, proto, seed + 1),
        }
        path = None
        if proto.cache_reference and cache_dir is not False:
            key = _cache_key(proto, reference, num, seed, side, hashes, sync)
            path = Path(cache_dir or default_cache_dir()) / f"reference-{key[:32]}.safetensors"
        cached = _load_cached(path) if path is not None else None
        return side, picks, path, cached

    size, picks, cache_path, cached = from_rank0(plan)
    models = _load_extractors(files, proto, torch.device(device))
    feats, sides = {}, {}
    for label in ("generated", "reference"):
        if label == "reference" and cached is not None:
            feats[label], sides[label] = cached
            continue
        pick = picks[label]
        feats[label] = _side_features(pick, proto, size, models, sync, label, progress, batch_size)
        sides[label] = _pick_meta(pick)
        if label == "reference" and cache_path is not None and feats[label] is not None:
            _save_cached(cache_path, feats[label], sides[label])

    return from_rank0(
        lambda: _result(
            protocol,
            proto,
            feats,
            sides,
            files,
            hashes,
            not_computed,
            num,
            seed,
            size,
            sync,
            cache_path,
            cached is not None,
        )
    )


def _result(
    name, proto, feats, sides, files, hashes, not_computed, num, seed, size, sync, cache_path, hit
) -> dict:
    """The distances between the two sides' features and what they were measured on."""
    gen, ref = feats["generated"], feats["reference"]
    fvd = fad = kvd = None
    subset = None if proto.kvd_subsets is None else min(proto.kvd_subset_size, num)
    if "video" in gen:
        if proto.distances == "release":
            fvd = frechet_distance_release(gen["video"], ref["video"])
        else:
            fvd = frechet_distance(*gaussian_stats(gen["video"]), *gaussian_stats(ref["video"]))
        k = kernel_distance(
            gen["video"],
            ref["video"],
            subsets=proto.kvd_subsets,
            subset_size=subset,
            generator=torch.Generator().manual_seed(seed),
        )
        kvd = {"mean": k.mean, "std": k.std, "subsets": k.subsets, "subset_size": subset}
    if "audio" in gen:
        if proto.distances == "release":
            fad = frechet_distance_release(gen["audio"], ref["audio"])
        else:
            fad = frechet_distance(*gaussian_stats(gen["audio"]), *gaussian_stats(ref["audio"]))
        fad *= proto.fad_scale
    result = {
        "protocol": name,
        "fvd": fvd,
        "kvd": kvd,
        "fad": fad,
        "not_computed": not_computed,
        "fad_scale": proto.fad_scale,
        "num": num,
        "frames": proto.frames,
        "fps": proto.fps,
        "stride": proto.stride,
        "size": size,
        "i3d_size": 224,
        "audio_rate": proto.audio_rate,
        "audio_channel": proto.audio_channel,
        "audio_extractor": proto.audio_extractor,
        "audio_features": {
            label: int(f["audio"].shape[0]) for label, f in feats.items() if "audio" in f
        },
        "selection": proto.selection,
        "seed": seed if proto.selection == "seeded" else None,
        "generated": sides["generated"],
        "reference": sides["reference"],
        "weights": {k: {"path": str(p), "sha256": hashes[k]} for k, p in files.items()},
        "reference_cache": None if cache_path is None else {"path": str(cache_path), "hit": hit},
    }
    if sync:
        result["sync"] = {
            "generated": float(gen["sync"].mean()),
            "reference": float(ref["sync"].mean()),
            "reference_shuffled": float(ref["sync_shuffled"].mean()),
        }
    return result

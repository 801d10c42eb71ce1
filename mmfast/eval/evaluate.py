"""`evaluate`: FVD, KVD and FAD between a folder of generated clips and a reference folder."""

from __future__ import annotations

import dataclasses
import hashlib
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
from mmfast.eval.weights import require_file

CACHE_FORMAT = 1
BATCH = 8  # clips per extractor call


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmfast" / "eval"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weight_files(protocol: Protocol, i3d, vggish, audioclip) -> dict[str, Path]:
    """The extractor files the protocol needs, each checked to exist before any work."""
    from mmfast.eval.i3d import I3D_FILE, I3D_SOURCE

    files = {"i3d": require_file(i3d, what=f"I3D ({I3D_FILE})", option="--i3d", source=I3D_SOURCE)}
    if protocol.audio_extractor == "vggish":
        from mmfast.eval.vggish import VGGISH_FILE, VGGISH_SOURCE

        files["vggish"] = require_file(
            vggish, what=f"VGGish ({VGGISH_FILE})", option="--vggish", source=VGGISH_SOURCE
        )
    else:
        from mmfast.eval.audioclip import AUDIOCLIP_FILE, AUDIOCLIP_SOURCE

        files["audioclip"] = require_file(
            audioclip,
            what=f"AudioCLIP ({AUDIOCLIP_FILE})",
            option="--audioclip",
            source=AUDIOCLIP_SOURCE,
        )
    return files


def _load_extractors(
    files: dict[str, Path], protocol: Protocol, device: torch.device
) -> dict[str, torch.nn.Module]:
    from mmfast.eval.i3d import load_i3d

    models = {"i3d": load_i3d(files["i3d"], bn_eps=protocol.i3d_bn_eps)}
    if "vggish" in files:
        from mmfast.eval.vggish import load_vggish

        models["vggish"] = load_vggish(files["vggish"])
    if "audioclip" in files:
        from mmfast.eval.audioclip import load_audioclip_audio

        models["audioclip"] = load_audioclip_audio(files["audioclip"])
    return {k: m.to(device) for k, m in models.items()}


def _side_features(
    pick: ClipPick,
    protocol: Protocol,
    size: int,
    models: dict[str, torch.nn.Module],
    sync: bool,
    label: str,
    progress: bool,
) -> dict[str, Tensor]:
    """One folder's picked clips -> {"video": [N, 400], "audio": [M, D]} and, with `sync`,
    "sync" [N] and "sync_shuffled" [N] (each clip's picture with the next clip's sound)."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pick.windows), desc=f"{label} clips", unit="clip", dynamic_ncols=True)
    video_feats, audio_feats, waves, seen, heard = [], [], [], [], []
    batch_v, batch_a = [], []

    def flush() -> None:
        videos, audios = torch.stack(batch_v), torch.stack(batch_a)
        video_feats.append(video_features(models["i3d"], videos, protocol))
        if "vggish" in models:
            audio_feats.append(vggish_features(models["vggish"], audios))
        else:
            waves.append(audios)
        if sync:
            from mmfast.data.synthetic import heights_from_audio, heights_from_video

            seen.append(heights_from_video(videos))
            heard.append(
                heights_from_audio(
                    audios[:, 0], videos.shape[1], fps=protocol.fps, audio_rate=protocol.audio_rate
                )
            )
        batch_v.clear()
        batch_a.clear()

    for video, audio in read_clips(pick, protocol, size):
        batch_v.append(video)
        batch_a.append(audio)
        if len(batch_v) == BATCH:
            flush()
        if bar is not None:
            bar.update(1)
    if batch_v:
        flush()
    if bar is not None:
        bar.close()
    out = {"video": torch.cat(video_feats)}
    if "audioclip" in models:
        out["audio"] = audioclip_features(models["audioclip"], torch.cat(waves), protocol)
    else:
        out["audio"] = torch.cat(audio_feats)
    if sync:
        from mmfast.data.synthetic import concordance

        seen_all, heard_all = torch.cat(seen), torch.cat(heard)
        out["sync"] = concordance(seen_all, heard_all)
        out["sync_shuffled"] = concordance(seen_all, heard_all.roll(-1, 0))
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
) -> dict:
    """FVD, KVD and FAD of the clips under `generated` against those under `reference`.

    `protocol` "default" (mmfast's) or "mmdiffusion" (the release's, flaws included; see
    `mmfast.eval.protocol`). The weight files are checked before any work; nothing is downloaded.
    `size`: the frame size both sides are letterboxed to (default: the generated clips' own;
    the release's protocol: 64). With `sync`, the synthetic task's A/V-sync score of both sides.
    The reference's features are cached under `cache_dir` (default ~/.cache/mmfast/eval; None
    there and `cache_dir=False` disable it), keyed by the folder's files, the protocol, N, the
    seed, the size and the weight files. Returns a JSON-ready dict.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    proto = PROTOCOLS[protocol]
    if num < 2:
        raise ValueError(f"num must be at least 2 (a covariance needs two clips), got {num}")
    files = _weight_files(proto, i3d, vggish, audioclip)
    hashes = {k: sha256_of(p) for k, p in files.items()}
    size = size or proto.size or frame_size(generated)
    picks = {
        "generated": pick_clips(generated, num, proto, seed),
        "reference": pick_clips(reference, num, proto, seed + 1),
    }
    device = torch.device(device)
    models = _load_extractors(files, proto, device)

    cache_path, cache_hit = None, False
    if proto.cache_reference and cache_dir is not False:
        key = _cache_key(proto, reference, num, seed, size, hashes, sync)
        cache_path = Path(cache_dir or default_cache_dir()) / f"reference-{key[:32]}.safetensors"
    feats, sides = {}, {}
    for label in ("generated", "reference"):
        pick = picks[label]
        cached = _load_cached(cache_path) if label == "reference" and cache_path else None
        if cached is not None:
            feats[label], sides[label] = cached
            cache_hit = True
            continue
        feats[label] = _side_features(pick, proto, size, models, sync, label, progress)
        sides[label] = _pick_meta(pick)
        if label == "reference" and cache_path is not None:
            _save_cached(cache_path, feats[label], sides[label])

    gen, ref = feats["generated"], feats["reference"]
    if proto.distances == "release":
        fvd = frechet_distance_release(gen["video"], ref["video"])
        fad = frechet_distance_release(gen["audio"], ref["audio"])
    else:
        fvd = frechet_distance(*gaussian_stats(gen["video"]), *gaussian_stats(ref["video"]))
        fad = frechet_distance(*gaussian_stats(gen["audio"]), *gaussian_stats(ref["audio"]))
    subset = None if proto.kvd_subsets is None else min(proto.kvd_subset_size, num)
    kvd = kernel_distance(
        gen["video"],
        ref["video"],
        subsets=proto.kvd_subsets,
        subset_size=subset,
        generator=torch.Generator().manual_seed(seed),
    )
    result = {
        "protocol": protocol,
        "fvd": fvd,
        "kvd": {"mean": kvd.mean, "std": kvd.std, "subsets": kvd.subsets, "subset_size": subset},
        "fad": fad * proto.fad_scale,
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
        "audio_features": {label: int(feats[label]["audio"].shape[0]) for label in feats},
        "selection": proto.selection,
        "seed": seed if proto.selection == "seeded" else None,
        "generated": sides["generated"],
        "reference": sides["reference"],
        "weights": {k: {"path": str(p), "sha256": hashes[k]} for k, p in files.items()},
        "reference_cache": None
        if cache_path is None
        else {"path": str(cache_path), "hit": cache_hit},
    }
    if sync:
        result["sync"] = {
            "generated": float(gen["sync"].mean()),
            "reference": float(ref["sync"].mean()),
            "reference_shuffled": float(ref["sync_shuffled"].mean()),
        }
    return result

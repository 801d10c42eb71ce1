"""`mmfast eval` as README runs it, on clip folders the test writes and randomly initialised
extractors saved as the standard weight files are laid out (I3D's converted file without its
BatchNorm counters, torchaudio's VGGish, a full AudioCLIP checkpoint)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import he_init_
from readme import readme_command, readme_torchrun, substitute
from user_media import mmfast

from mmfast.data import write_clip
from mmfast.data.synthetic import SyntheticAVDataset

CLIPS = 4


def _write_folder(root: Path, seed: int, shift: bool = False) -> Path:
    root.mkdir(parents=True)
    data = SyntheticAVDataset(num_clips=CLIPS, size=64, seed=seed)
    for i in range(CLIPS):
        video, audio = data[i]
        if shift:  # another distribution: inverted colours and a noise floor
            g = torch.Generator().manual_seed(i)
            video = (-video + 0.3 * torch.randn(video.shape, generator=g)).clamp(-1, 1)
            audio = (audio + 0.2 * torch.randn(audio.shape, generator=g)).clamp(-1, 1)
        write_clip(root / f"clip_{i}.mp4", video, audio, fps=10, audio_rate=16000)
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from mmfast.eval.audioclip import ESResNeXtFBSP
    from mmfast.eval.i3d import InceptionI3d
    from mmfast.eval.vggish import VGGish

    root = tmp_path_factory.mktemp("eval")
    i3d = he_init_(InceptionI3d(), seed=0).state_dict()
    i3d = {k: v for k, v in i3d.items() if "num_batches_tracked" not in k}
    torch.save(i3d, root / "i3d_pretrained_400.pt")
    torch.save(he_init_(VGGish(), seed=1).state_dict(), root / "vggish.pt")
    audio = {f"audio.{k}": v for k, v in he_init_(ESResNeXtFBSP(), seed=2).state_dict().items()}
    audio["logit_scale"] = torch.tensor(4.6)  # the full checkpoint's other parts are ignored
    torch.save(audio, root / "AudioCLIP-Full-Training.pt")
    samples = _write_folder(root / "samples", seed=1)
    return {
        "root": root,
        "samples": samples,
        "test": _write_folder(root / "landscape" / "test", seed=2),
        "same": Path(shutil.copytree(samples, root / "same")),
        "shifted": _write_folder(root / "shifted", seed=3, shift=True),
    }


def _eval(world, replace: dict[str, str], extra=(), name="results.json", protocol="default"):
    words = (
        ("eval", "--protocol", "mmdiffusion") if protocol == "mmdiffusion" else ("eval", "--vggish")
    )
    line = readme_command(*words)
    argv = substitute(
        line,
        {
            "i3d_pretrained_400.pt": str(world["root"] / "i3d_pretrained_400.pt"),
            "results.json": name,
            **replace,
        },
        ["--num", str(CLIPS), "--cache", str(world["root"] / "cache"), "--no-progress", *extra],
    )
    proc = mmfast(*argv, cwd=world["root"])
    return proc, (json.loads((world["root"] / name).read_text()) if proc.returncode == 0 else None)


def _default(world, reference: str, name: str, extra=()):
    return _eval(
        world,
        {
            "samples/": str(world["samples"]),
            "~/landscape/test": str(world[reference]),
            "vggish.pt": str(world["root"] / "vggish.pt"),
        },
        extra,
        name,
    )


@pytest.fixture(scope="module")
def first_run(world):
    return _default(world, "test", "a.json", ["--sync"])


def test_default_protocol_reports_every_number_and_caches_the_reference(world, first_run):
    proc, res = first_run
    assert proc.returncode == 0, proc.stderr
    assert "FVD" in proc.stdout and "wrote" in proc.stdout
    assert res["protocol"] == "default" and res["num"] == CLIPS
    assert res["size"] == 64 and res["audio_rate"] == 16000 and res["frames"] == 16
    assert res["fvd"] > 0 and res["fad"] > 0
    assert res["kvd"]["subsets"] == 100 and res["kvd"]["subset_size"] == CLIPS
    assert res["audio_features"] == {"generated": 2 * CLIPS, "reference": 2 * CLIPS}
    for key, file in (("i3d", "i3d_pretrained_400.pt"), ("vggish", "vggish.pt")):
        digest = hashlib.sha256((world["root"] / file).read_bytes()).hexdigest()
        assert res["weights"][key]["sha256"] == digest
    assert res["reference_cache"]["hit"] is False
    assert res["reference"]["clips_available"] == CLIPS and not res["reference"]["repeated"]
    sync = res["sync"]  # the synthetic task's clips: real pairs agree, mismatched ones do not
    assert sync["reference"] > 0.9 and sync["generated"] > 0.9
    assert sync["reference_shuffled"] < sync["reference"] - 0.3

    proc, again = _default(world, "test", "b.json", ["--sync"])
    assert proc.returncode == 0, proc.stderr
    assert again["reference_cache"]["hit"] is True
    for key in ("fvd", "fad", "kvd", "sync"):
        assert again[key] == res[key], key


def test_identical_folders_are_near_zero_and_a_shifted_one_is_far(world, first_run):
    other = first_run[1]
    proc, same = _default(world, "same", "same.json")
    assert proc.returncode == 0, proc.stderr
    proc, shifted = _default(world, "shifted", "shifted.json")
    assert proc.returncode == 0, proc.stderr
    assert abs(same["fvd"]) < 1e-6 * other["fvd"] and abs(same["fad"]) < 1e-6 * other["fad"]
    assert shifted["fvd"] > 2 * other["fvd"] and shifted["fad"] > 2 * other["fad"]
    assert shifted["kvd"]["mean"] > other["kvd"]["mean"]


def test_release_protocol_repeats_a_short_folder_and_scales_fad(world):
    proc, res = _eval(
        world,
        {
            "samples/": str(world["samples"]),
            "~/landscape/train": str(world["test"]),
            "AudioCLIP-Full-Training.pt": str(world["root"] / "AudioCLIP-Full-Training.pt"),
        },
        ["--num", str(CLIPS + 2)],
        "release.json",
        protocol="mmdiffusion",
    )
    assert proc.returncode == 0, proc.stderr
    assert res["protocol"] == "mmdiffusion" and res["num"] == CLIPS + 2
    assert res["generated"]["repeated"] and res["reference"]["repeated"]
    assert res["size"] == 64 and res["audio_rate"] == 44100 and res["stride"] == 1
    assert res["fad_scale"] == 10_000 and res["kvd"]["subsets"] == 0
    assert res["seed"] is None and res["reference_cache"] is None
    assert "audioclip" in res["weights"] and "vggish" not in res["weights"]


def test_errors_name_what_is_missing(world):
    proc, _ = _default(world, "test", "x.json", ["--num", str(CLIPS + 1)])
    assert proc.returncode == 2
    assert f"4 clips of 16 frames at 10 fps, fewer than --num {CLIPS + 1}" in proc.stderr
    proc = mmfast(
        "eval",
        "--generated",
        str(world["samples"]),
        "--reference",
        str(world["test"]),
        "--out",
        "y.json",
        cwd=world["root"],
    )
    assert proc.returncode == 2 and "--i3d" in proc.stderr and "never downloads" in proc.stderr
    assert not (world["root"] / "y.json").exists()


def _without(argv: list[str], option: str) -> list[str]:
    """argv less `option` and its value (a user who has not that weight file)."""
    i = argv.index(option)
    return argv[:i] + argv[i + 2 :]


def _paths(world) -> dict[str, str]:
    return {
        "samples/": str(world["samples"]),
        "~/landscape/test": str(world["test"]),
        "i3d_pretrained_400.pt": str(world["root"] / "i3d_pretrained_400.pt"),
        "vggish.pt": str(world["root"] / "vggish.pt"),
    }


def test_i3d_alone_gives_fvd_and_kvd_and_says_why_fad_is_missing(world):
    line = _without(readme_command("eval", "--vggish"), "--vggish")
    argv = substitute(
        line,
        {k: v for k, v in _paths(world).items() if k != "vggish.pt"} | {"results.json": "v.json"},
        ["--num", "2", "--no-cache", "--no-progress"],
    )
    proc = mmfast(*argv, cwd=world["root"])
    assert proc.returncode == 0, proc.stderr
    res = json.loads((world["root"] / "v.json").read_text())
    assert res["fvd"] > 0 and res["kvd"]["subsets"] == 100 and res["fad"] is None
    assert set(res["not_computed"]) == {"fad"} and "--vggish" in res["not_computed"]["fad"]
    assert "FVD" in proc.stdout and "FAD not computed: no VGGish" in proc.stdout
    assert set(res["weights"]) == {"i3d"} and res["audio_features"] == {}


def test_torchrun_two_processes_give_the_numbers_of_one(world, tmp_path):
    """README's torchrun command (with VGGish alone, FAD: I3D on the CPU would take minutes) on 2
    gloo processes, batches of one clip so that the ranks interleave, against one process. The
    shuffled-pair sync score pairs each clip with the next, so it also checks the order."""
    line = readme_torchrun("eval", nproc=2)
    replace = {k: v for k, v in _paths(world).items() if k != "i3d_pretrained_400.pt"}
    extra = ["--clips", str(CLIPS), "--no-cache", "--no-progress", "--batch-size", "1", "--sync"]
    two = substitute(_without(line, "--i3d"), replace | {"results.json": "two.json"}, extra)
    proc = subprocess.run(two, cwd=world["root"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote") == 1  # rank 0 alone reports and writes
    one = ["one.json" if w == "two.json" else w for w in two[two.index("mmfast") + 1 :]]
    # torchrun runs each process on one thread; a thread count changes float sums' last bits.
    single = mmfast(*one, cwd=world["root"], env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert single.returncode == 0, single.stderr
    res2 = json.loads((world["root"] / "two.json").read_text())
    res1 = json.loads((world["root"] / "one.json").read_text())
    assert res2["fad"] > 0 and res2["fvd"] is None and set(res2["not_computed"]) == {"fvd", "kvd"}
    for key in ("fad", "sync", "audio_features", "generated", "reference"):
        assert res2[key] == res1[key], key

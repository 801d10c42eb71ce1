"""Bad input to every subcommand: one line on stderr that names the option and what was expected,
exit code 2, no traceback, and nothing written that a later run could take for an output.

In-process through `mmfast.cli.main` (the same parser and error path as the command); one case
per kind of failure also runs in a subprocess."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from user_media import mmfast

from mmfast.cli import main
from mmfast.models import CoupledUNet
from mmfast.models.official import to_official_state_dict

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def files(tmp_path_factory, media) -> dict[str, Path]:
    """Inputs a user might get wrong: a tiny run, damaged and foreign checkpoints, odd media."""
    root = tmp_path_factory.mktemp("inputs")
    run = root / "run"
    assert (
        main(["train", "--out", str(run), "--steps", "1", "--batch-size", "1", "--no-progress"])
        == 0
    )
    ckpt = (run / "checkpoint.safetensors").read_bytes()
    (root / "truncated.safetensors").write_bytes(ckpt[: len(ckpt) // 2])
    save_file({"weight": torch.zeros(3)}, str(root / "foreign.safetensors"))
    torch.save([1, 2, 3], root / "list.pt")
    torch.save({"epoch": 3, "lr": 1e-4}, root / "no_tensors.pt")
    torch.save(to_official_state_dict(CoupledUNet("tiny")), root / "tiny_official.pt")
    (root / "truncated.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    (root / "a_file").write_text("not a folder")
    (root / "notes.txt").write_text("not media")
    (root / "no_videos").mkdir()
    (root / "no_videos" / "readme.txt").write_text("nothing here")
    return {
        "run": run,
        "ckpt": run / "checkpoint.safetensors",
        "wav": media / "waves.wav",
        "mp4": media / "street.mp4",
        "no_sound": media / "no_sound.mp4",
        "blip": media / "blip.wav",
        **{p.stem if p.is_file() else p.name: p for p in root.iterdir()},
    }


def _cases(f: dict[str, Path], out: Path) -> list[tuple[list[str], str]]:
    """(argv, text the one-line error must hold)."""
    o = str(out)
    train = ["train", "--out", o]
    sample = ["sample", "--checkpoint", str(f["ckpt"]), "--out", o]
    cond = [*sample, "--num", "1", "--steps", "1"]
    demo = ["demo", "--out", o]
    convert = ["convert-official"]
    media_dir = str(f["mp4"].parent)
    ev = [
        "eval",
        "--generated",
        media_dir,
        "--reference",
        str(f["no_videos"]),
        "--out",
        f"{o}/r.json",
    ]
    notes = str(f["notes"])  # exists; only read once the clips are known
    ev_weights = [*ev, "--i3d", notes, "--vggish", notes]
    under_file = str(f["a_file"] / "x")
    cases = [
        ([*train, "--steps", "0"], "--steps: expected a positive integer, got '0'"),
        ([*train, "--steps", "-3"], "--steps: expected a positive integer"),
        ([*train, "--steps", "ten"], "--steps: expected a positive integer, got 'ten'"),
        ([*train, "--batch-size", "0"], "--batch-size: expected a positive integer"),
        ([*train, "--lr", "0"], "--lr: expected a positive number"),
        ([*train, "--lr=-1e-4"], "--lr: expected a positive number"),
        ([*train, "--ema", "1.5"], "--ema: expected an EMA rate in [0, 1)"),
        ([*train, "--grad-clip", "-1"], "--grad-clip: expected a number >= 0"),
        ([*train, "--hflip", "2"], "--hflip: expected a probability in [0, 1]"),
        ([*train, "--seed", "-1"], "--seed: expected an integer >= 0"),
        ([*train, "--checkpoint-every", "0"], "--checkpoint-every: expected a positive integer"),
        ([*train, "--log-every", "0"], "--log-every: expected a positive integer"),
        ([*train, "--minutes", "0"], "--minutes: expected a positive number"),
        ([*train, "--minutes", "-2"], "--minutes: expected a positive number"),
        ([*train, "--workers", "-1"], "--workers: expected an integer >= 0"),
        ([*train, "--precision", "fp8"], "--precision: invalid choice: 'fp8'"),
        ([*train, "--resize", "stretch"], "--resize: invalid choice: 'stretch'"),
        ([*train, "--preset", "huge"], "--preset huge: expected one of mmdiffusion-64, tiny"),
        ([*train, "--data", str(f["run"] / "missing")], "--data"),
        ([*train, "--data", str(f["no_videos"])], "no video files"),
        (["train", "--out", under_file], "--out"),
        (["train", "--out", str(f["a_file"])], "exists and is not a folder"),
        (
            ["train", "--out", str(f["run"]), "--preset", "mmdiffusion-64"],
            "--out "
            + str(f["run"])
            + ": "
            + str(f["ckpt"])
            + " holds a checkpoint of another model",
        ),
        ([*sample, "--num", "0"], "--num/--clips: expected a positive integer, got '0'"),
        ([*sample, "--num", "-1"], "--num/--clips: expected a positive integer"),
        ([*sample, "--batch-size", "0"], "--batch-size: expected a positive integer"),
        ([*sample, "--steps", "0"], "--steps: expected a positive integer"),
        ([*sample, "--seed", "-1"], "--seed: expected an integer >= 0"),
        ([*sample, "--fps", "0"], "--fps: expected a positive number"),
        ([*sample, "--sampler", "euler"], "--sampler: invalid choice: 'euler'"),
        ([*sample, "--weights", "best"], "--weights: invalid choice: 'best'"),
        ([*sample, "--guidance", "cfg"], "--guidance: invalid choice: 'cfg'"),
        ([*sample, "--device", "gpu0"], "--device gpu0: expected cpu, cuda or cuda:N"),
        ([*sample, "--start", "1"], "--start apply to --condition-audio / --condition-video only"),
        (
            [*sample, "--condition-audio", str(f["wav"]), "--condition-video", str(f["mp4"])],
            "--condition-video: not allowed with argument --condition-audio",
        ),
        (
            ["sample", "--checkpoint", str(f["run"] / "nope.safetensors"), "--out", o],
            "does not exist",
        ),
        (
            ["sample", "--checkpoint", str(f["no_videos"]), "--out", o],
            "a folder without a training checkpoint.safetensors",
        ),
        (
            ["sample", "--checkpoint", str(f["truncated"].with_suffix(".safetensors")), "--out", o],
            "is neither a safetensors file",
        ),
        (["sample", "--checkpoint", str(f["foreign"]), "--out", o], "is not an mmfast model file"),
        (["sample", "--checkpoint", str(f["list"]), "--out", o], "must be a dict of tensors"),
        (["sample", "--checkpoint", str(f["no_tensors"]), "--out", o], "must be a dict of tensors"),
        (
            ["sample", "--checkpoint", str(f["truncated"].with_suffix(".pt")), "--out", o],
            "is not a readable PyTorch state dict",
        ),
        (
            ["sample", "--checkpoint", str(f["tiny_official"]), "--out", o],
            "official checkpoint does not match the model",
        ),
        ([*cond, "--condition-audio", str(f["run"] / "missing.wav")], "--condition-audio"),
        ([*cond, "--condition-audio", str(f["no_sound"])], "has no audio stream"),
        ([*cond, "--condition-video", str(f["wav"])], "has no video stream"),
        ([*cond, "--condition-audio", str(f["notes"])], "cannot open as media"),
        ([*cond, "--condition-audio", str(f["blip"])], "the clip needs 1.600 s"),
        ([*cond, "--condition-video", str(f["mp4"]), "--start", "10"], "the clip needs 1.600 s"),
        (
            [*cond, "--condition-audio", str(f["wav"]), "--start", "-1"],
            "--start: expected a number >= 0",
        ),
        (
            [*cond, "--condition-audio", str(f["wav"]), "--guidance-scale", "-1"],
            "--guidance-scale: expected a number >= 0",
        ),
        (["sample", "--checkpoint", str(f["ckpt"]), "--out", under_file], "--out"),
        ([*demo, "--minutes", "0"], "--minutes: expected a positive number"),
        ([*demo, "--num", "0"], "--num: expected a positive integer"),
        ([*demo, "--steps", "0"], "--steps: expected a positive integer"),
        ([*demo, "--seed", "-1"], "--seed: expected an integer >= 0"),
        (["demo", "--out", under_file], "--out"),
        ([*train, "--prediction", "noise"], "--prediction: invalid choice: 'noise'"),
        ([*train, "--warmup-steps", "-1"], "--warmup-steps: expected an integer >= 0"),
        ([*train, "--min-snr-gamma", "0"], "--min-snr-gamma: expected a positive number"),
        ([*convert, str(f["run"] / "nope.pt"), f"{o}/x.safetensors"], "does not exist"),
        ([*convert, str(f["list"]), f"{o}/x.safetensors"], "must be a dict of tensors"),
        ([*convert, str(f["tiny_official"]), f"{o}/x.safetensors"], "another model configuration"),
        (
            [*convert, str(f["truncated"].with_suffix(".pt")), f"{o}/x.safetensors"],
            "not a readable PyTorch state dict",
        ),
        (
            [*convert, str(f["tiny_official"]), f"{o}/x.pt"],
            "expected a file name ending in .safetensors",
        ),
        ([*convert, str(f["tiny_official"]), under_file + ".safetensors"], "DEST"),
        (
            [*convert, str(f["tiny_official"]), f"{o}/x.safetensors", "--preset", "big"],
            "--preset big",
        ),
    ]
    cases += [
        ([*sample, "--sr", str(f["run"] / "nope")], "--sr"),
        ([*sample, "--sr", str(f["ckpt"])], "is a training checkpoint of a CoupledUNet, not a SuperResUNet"),
        ([*sample, "--sr", str(f["run"]), "--sr-steps", "0"], "--sr-steps: expected a positive integer"),
        ([*sample, "--sr", str(f["run"]), "--sr-steps", "1"], "--sr-steps 1: no integer stride gives exactly 1 of 1000 timesteps"),
        ([*sample, "--sr", str(f["run"]), "--sr-batch-size", "0"], "--sr-batch-size: expected a positive integer"),
        ([*sample, "--sr", str(f["run"]), "--sr-sampler", "euler"], "--sr-sampler: invalid choice"),
        (["train-sr", "--out", o, "--preset", "tiny"], "--preset tiny: expected one of sr-256, tiny-sr"),
        (["train-sr", "--out", str(f["run"])], "holds a checkpoint of a CoupledUNet, and this run trains a SuperResUNet"),
        (["train-sr", "--out", o, "--steps", "0"], "--steps: expected a positive integer"),
        ([*convert, "--sr", str(f["tiny_official"]), f"{o}/x.safetensors"], "does not match the model"),
        ([*convert, "--sr", str(f["tiny_official"]), f"{o}/x.safetensors", "--preset", "tiny"], "--preset tiny: expected one of sr-256, tiny-sr"),
        # eval: folders, counts, weight files and protocol options, all before any work.
        ([*ev, "--generated", str(f["a_file"] / "nope")], "--generated"),
        ([*ev, "--generated", str(f["no_videos"]), "--reference", str(f["no_videos"])], "--generated and --reference are the same folder"),
        ([*ev, "--num", "1"], "--num 1: a covariance needs at least 2 clips per side"),
        ([*ev, "--num", "0"], "--num/--clips: expected a positive integer"),
        ([*ev, "--protocol", "fvd"], "--protocol: invalid choice: 'fvd'"),
        ([*ev, "--protocol", "mmdiffusion", "--vggish", "v.pt"], "--vggish: --protocol mmdiffusion measures FAD with --audioclip"),
        ([*ev, "--audioclip", "a.pt"], "--audioclip: the default protocol measures FAD with --vggish"),
        (ev_weights[:-4], "nothing to measure: pass I3D (i3d_pretrained_400.pt) with --i3d"),
        ([*ev, "--clips", "1"], "--num 1: a covariance needs at least 2 clips per side"),
        ([*ev_weights[:-2], "--vggish", str(f["a_file"] / "v.pt")], "no such file; expected VGGish"),
        ([*ev_weights, "--out", str(f["a_file"].parent)], "is a folder, expected a file name"),
        ([*ev_weights, "--generated", str(f["no_videos"]), "--reference", media_dir], "no video files under"),
    ]  # fmt: skip
    if not CUDA:
        cases += [
            ([*train, "--device", "cuda"], "--device cuda: CUDA is not available on this machine"),
            ([*sample, "--device", "cuda"], "--device cuda: CUDA is not available on this machine"),
            ([*sample, "--device", "cuda:1"], "--device cuda:1: CUDA is not available"),
        ]
    return cases


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_every_bad_input_gets_one_line_and_exit_code_2(files, tmp_path, capsys):
    before = _digest(files["run"])
    failures = []
    for i, (argv, expected) in enumerate(_cases(files, tmp_path / "out")):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        problem = None
        if code != 2:
            problem = f"exit code {code}"
        elif len(lines) != 1 or not lines[0].startswith(f"mmfast {argv[0]}: error: "):
            problem = f"not one error line: {captured.err!r}"
        elif expected not in lines[0]:
            problem = f"error does not say {expected!r}: {lines[0]!r}"
        elif written:
            problem = f"wrote {written}"
        if problem:
            failures.append(f"case {i} {argv[:1] + argv[3:]}: {problem}")
    assert _digest(files["run"]) == before, "a failed command changed the run folder"
    assert not failures, "\n".join(failures)


def test_the_errors_are_the_same_in_a_subprocess(files, tmp_path):
    for argv, expected in [
        (["sample", "--checkpoint", str(files["ckpt"]), "--out", "o", "--num", "0"], "--num"),
        (["sample", "--checkpoint", str(files["foreign"]), "--out", "o"], "--checkpoint"),
        (["train", "--out", str(files["run"]), "--preset", "mmdiffusion-64"], "another model"),
    ]:
        proc = mmfast(*argv, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and expected in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())

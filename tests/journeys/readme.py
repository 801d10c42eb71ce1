"""README.md's code blocks: the `mmfast` command lines and the Python examples, as the journeys run
them (so that README and CLI cannot drift apart)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def code_blocks(language: str) -> list[str]:
    """The bodies of README's ```language blocks, in order."""
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def command_lines() -> list[tuple[list[str], list[str]]]:
    """Every `mmfast ...` command of README's bash blocks as (launcher, words after `mmfast`): the
    launcher is [] for `mmfast ...`, e.g. ["torchrun", "--nproc_per_node", "8"] for
    `torchrun --nproc_per_node 8 -m mmfast ...`; `a && b` gives each command."""
    commands = []
    for block in code_blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                for i, word in enumerate(words):
                    if word == "mmfast" and i == 0:
                        commands.append(([], words[1:]))
                    elif word == "mmfast" and words[i - 1] == "-m":
                        commands.append((words[: i - 1], words[i + 1 :]))
                    else:
                        continue
                    break
    return commands


def readme_command(*words: str, launcher: str | None = None) -> list[str]:
    """The one README command that holds all of `words` and is started by `launcher` (None: by
    `mmfast` itself); a test fails if README lost it or has it twice."""
    found = [
        argv
        for start, argv in command_lines()
        if all(w in argv for w in words) and (start[:1] == [launcher] if launcher else not start)
    ]
    assert len(found) == 1, f"README should have one mmfast command with {words}, found {found}"
    return list(found[0])


def substitute(command: list[str], replace: dict[str, str], extra: list[str] = ()) -> list[str]:
    """`command` with whole words replaced (each must occur) and `extra` words appended."""
    for old in replace:
        assert old in command, f"{old!r} is not in README's command {command}"
    return [replace.get(w, w) for w in command] + list(extra)


def readme_torchrun(*words: str, nproc: int) -> list[str]:
    """The one README command under torchrun that holds all of `words`, as the argv that runs it
    here: the launcher's words as README writes them (torchrun refuses an ambiguous prefix of its
    own options, so a README option it would take for its own fails here too) with the process
    count set to `nproc`, started through this Python's torch.distributed.run."""
    import sys

    found = [
        (start, argv)
        for start, argv in command_lines()
        if start[:1] == ["torchrun"] and all(w in argv for w in words)
    ]
    assert len(found) == 1, f"README should have one torchrun command with {words}, found {found}"
    start, argv = found[0]
    launcher = list(start[1:])
    i = launcher.index("--nproc_per_node")
    launcher[i + 1] = str(nproc)
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "mmfast", *argv]

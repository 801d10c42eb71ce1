"""`atomic_path`: the file appears whole or not at all, with the permissions open() would give it
(checkpoints, samples and clip stores are shared on clusters; mkstemp alone makes them 0600)."""

from __future__ import annotations

import stat

import pytest

from mmfast.files import atomic_path


def test_the_written_file_has_open_s_permissions(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    with atomic_path(tmp_path / "atomic.bin") as tmp:
        tmp.write_bytes(b"payload")
    written = tmp_path / "atomic.bin"
    assert written.read_bytes() == b"payload"
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []

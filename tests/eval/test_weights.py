"""Weight files: found or explained, read without running pickled code, loaded strictly."""

from __future__ import annotations

import collections
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mmfast.eval.weights import WeightFileError, load_strict, require_file
from mmfast.state_dict import StateDictError, read_state_dict


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))


def test_require_file_names_option_and_source(tmp_path):
    with pytest.raises(WeightFileError, match=r"pass it with --i3d .*never downloads.*from Drive"):
        require_file(None, what="I3D", option="--i3d", source="Drive")
    with pytest.raises(WeightFileError, match=r"--i3d .*nope.pt: no such file; expected I3D"):
        require_file(tmp_path / "nope.pt", what="I3D", option="--i3d", source="Drive")
    (tmp_path / "w.pt").write_bytes(b"")
    assert require_file(tmp_path / "w.pt", what="I3D", option="--i3d", source="x").is_file()


def test_read_state_dict_formats_and_refusals(tmp_path):
    state = _net().state_dict()
    torch.save(state, tmp_path / "a.pt")
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "a.safetensors")
    for name in ("a.pt", "wrapped.pt", "a.safetensors"):
        got = read_state_dict(tmp_path / name, what="net")
        assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)

    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(StateDictError, match="evil.pt is not a readable net"):
        read_state_dict(tmp_path / "evil.pt", what="net")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "a.pt").read_bytes()[:100])
    with pytest.raises(WeightFileError, match="cut.pt is not a readable net"):
        read_state_dict(tmp_path / "cut.pt", what="net", error=WeightFileError)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(StateDictError, match="list.pt holds a list; net must be a dict of tensors"):
        read_state_dict(tmp_path / "list.pt", what="net")


def test_load_strict_lists_every_difference_and_allows_optional_keys():
    source = _net()
    with torch.no_grad():
        source[0].weight.fill_(0.5)
    state = collections.OrderedDict(source.state_dict())
    counter = "1.num_batches_tracked"
    del state[counter]
    target = _net()
    load_strict(target, state, path="w.pt", what="a net", optional=[counter])
    assert torch.equal(target[0].weight, source[0].weight)

    with pytest.raises(WeightFileError, match=rf"1 missing: {counter}"):
        load_strict(_net(), state, path="w.pt", what="a net")
    bad = dict(state, extra=torch.zeros(1))
    bad["0.bias"] = torch.zeros(4)
    with pytest.raises(WeightFileError) as err:
        load_strict(_net(), bad, path="w.pt", what="a net", optional=[counter])
    assert "1 unexpected: extra" in str(err.value)
    assert "0.bias: [4] torch.float32, expected [3] torch.float32" in str(err.value)
    half = dict(state, **{"0.weight": state["0.weight"].half()})
    with pytest.raises(WeightFileError, match="0.weight: .* torch.float16, expected"):
        load_strict(_net(), half, path="w.pt", what="a net", optional=[counter])

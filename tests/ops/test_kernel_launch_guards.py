"""Failures that only a GPU would show, caught on the CPU: every kernel launch runs under its
input's device guard (Triton launches on the current device, so a tensor on cuda:1 while cuda:0 is
current would be read from the wrong GPU), the conv's TF32 choice reads PyTorch's precision through
either API, and an empty sequence launches nothing that would read past it."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from mmfast.kernels import (
    device,
    gn_silu_conv_bwd,
    gn_silu_conv_fwd,
    gn_silu_conv_stats,
    rsmma_bwd,
    rsmma_fwd,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNELS = [
    (rsmma_fwd, "rsmma_fwd_kernel"),
    (rsmma_bwd, "rsmma_bwd_kernel_preprocess"),
    (rsmma_bwd, "rsmma_bwd_kernel_dkdv"),
    (rsmma_bwd, "rsmma_bwd_kernel_dq"),
    (gn_silu_conv_stats, "gn_silu_conv_stats_kernel"),
    (gn_silu_conv_fwd, "gn_silu_conv_fwd_kernel"),
    (gn_silu_conv_bwd, "gn_silu_conv_bwd_kernel_dx"),
    (gn_silu_conv_bwd, "gn_silu_conv_bwd_kernel_dx_norm"),
    (gn_silu_conv_bwd, "gn_silu_conv_bwd_kernel_dw"),
]


class _Launches:
    """Kernels that record each launch with the devices whose guard was open at the time."""

    def __init__(self, monkeypatch):
        self.open: list[torch.device] = []
        self.launches: list[tuple[str, list[torch.device]]] = []

        @contextlib.contextmanager
        def guard(x):
            self.open.append(x.device)
            try:
                yield
            finally:
                self.open.pop()

        monkeypatch.setattr(device, "on_device", guard)
        for module, name in KERNELS:
            monkeypatch.setattr(module, name, self._wrap(name, getattr(module, name)))

    def _wrap(self, name, kernel):
        launches, opened = self.launches, self.open

        class Recorded:
            def __getitem__(self, grid):
                launches.append((name, list(opened)))
                return kernel[grid]

        return Recorded()


def test_every_launch_runs_under_its_inputs_device_guard(monkeypatch):
    launches = _Launches(monkeypatch)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 4 * 3, 16, generator=g).to(DEVICE)
    k = torch.randn(1, 2, 4 * 5, 16, generator=g).to(DEVICE)
    out, lse = rsmma_fwd.rsmma_fwd(q, k, k, 4, 2, 1)
    rsmma_bwd.rsmma_bwd(out, q, k, k, out, lse, 4, 2, 1)
    x = torch.randn(2, 8, 12, generator=g).to(DEVICE)
    w = torch.randn(6, 8, 3, generator=g).to(DEVICE)
    gamma = torch.ones(8, device=DEVICE)
    y, mean, rstd = gn_silu_conv_fwd.gn_silu_conv_fwd(x, w, None, 2, gamma, gamma, 4)
    gn_silu_conv_bwd.gn_silu_conv_bwd(y, x, w, 2, mean, rstd, gamma, gamma, 4, has_bias=False)
    assert {name for name, _ in launches.launches} == {name for _, name in KERNELS}
    for name, opened in launches.launches:
        assert opened and opened[-1] == x.device, name


def test_the_guard_selects_the_tensors_gpu():
    with FakeTensorMode():
        x = torch.empty(2, 3, device="cuda:1")
    guard = device.on_device(x)
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    assert isinstance(device.on_device(torch.empty(2)), contextlib.nullcontext)


@pytest.fixture
def precision_settings():
    """Restore PyTorch's fp32 precision settings (new and legacy API) after a test."""
    backends = torch.backends
    if not hasattr(getattr(backends.cudnn, "conv", None), "fp32_precision"):
        pytest.skip("this torch has no fp32_precision API (added in 2.9)")
    saved = (
        backends.fp32_precision,
        backends.cudnn.fp32_precision,
        backends.cudnn.conv.fp32_precision,
        backends.cudnn.rnn.fp32_precision,
    )
    yield backends
    backends.fp32_precision, backends.cudnn.fp32_precision = saved[:2]
    backends.cudnn.conv.fp32_precision, backends.cudnn.rnn.fp32_precision = saved[2:]


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_tf32_choice_follows_the_new_precision_api(precision_settings, monkeypatch, precision):
    """Once a user sets cudnn.conv.fp32_precision, reading the legacy cudnn.allow_tf32 raises in
    torch >= 2.9; the conv reads the setting either way and follows it."""
    precision_settings.cudnn.conv.fp32_precision = precision
    precision_settings.cudnn.rnn.fp32_precision = "ieee" if precision == "tf32" else "tf32"
    with pytest.raises(RuntimeError, match="mix of the legacy and new APIs"):
        _ = torch.backends.cudnn.allow_tf32  # what the conv read before
    monkeypatch.setattr(device, "sms", lambda x: 132)  # as if x were on a GPU
    x = torch.empty(1, 4, 8)
    assert gn_silu_conv_fwd.input_precision(x) == precision
    assert gn_silu_conv_fwd.input_precision(x.half()) == "tf32"  # ignored for 16-bit


@pytest.mark.parametrize("allow", [False, True])
def test_tf32_choice_follows_the_legacy_flag(precision_settings, monkeypatch, allow):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow)
    monkeypatch.setattr(device, "sms", lambda x: 132)
    assert gn_silu_conv_fwd.input_precision(torch.empty(1, 4, 8)) == ("tf32" if allow else "ieee")


def test_empty_sequence_launches_nothing(monkeypatch):
    """The statistics kernel reads each group's first element unmasked: with L = 0 that read lies
    past the tensor (an illegal address on a GPU), so the launcher must not launch."""
    launches = _Launches(monkeypatch)
    x = torch.empty(2, 8, 0, device=DEVICE)
    mean, rstd = gn_silu_conv_stats.gn_silu_conv_stats(x, 4, 1e-5)
    assert mean.shape == rstd.shape == (2, 4)
    y, _, _ = gn_silu_conv_fwd.gn_silu_conv_fwd(
        x, torch.empty(6, 8, 3, device=DEVICE), None, 1, torch.ones(8, device=DEVICE),
        torch.zeros(8, device=DEVICE), 4,
    )  # fmt: skip
    assert y.shape == (2, 6, 0)
    assert launches.launches == []

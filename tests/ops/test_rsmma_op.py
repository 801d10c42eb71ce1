"""The RS-MMA custom ops (registration, autograd, fake tensors), the "triton" backend's place in
`auto`, and the coupled U-Net running through it, eagerly and under torch.compile(fullgraph=True).

On the CPU the ops run the Triton kernels in the interpreter (tests/ops/conftest.py) unless a test
switches them to their gather implementation with the `gather_impl` fixture.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import randomize_
from rsmma_cases import DEVICE, make_inputs, rel_err

from mmfast.models import CoupledUNet, get_config
from mmfast.models.rsmma import CrossModalAttention
from mmfast.ops import rsmma_attention, rsmma_backend, rsmma_triton

needs_cpu = pytest.mark.skipif(DEVICE != "cpu", reason="checks the CPU implementations")


@pytest.fixture
def gather_impl(monkeypatch):
    """The ops' implementation on CPU tensors without the interpreter: the gather reference."""
    monkeypatch.setattr(rsmma_triton, "uses_kernel", lambda device: device.type == "cuda")


def _op_args(shift_tensor: bool, dtype=torch.float32):
    q, k, v, _ = make_inputs(2, 2, 4, 3, 5, 16, dtype, seed=11)
    shift_t = torch.tensor([1, 6], device=q.device) if shift_tensor else None
    return q, k, v, shift_t, 3, 4, 2, 0.25


@pytest.mark.parametrize("impl", ["kernel", "gather"])
@pytest.mark.parametrize("shift_tensor", [False, True], ids=["int-shift", "shift-tensor"])
def test_opcheck(request, impl, shift_tensor):
    """torch.library.opcheck: schema, fake (meta) implementation, autograd registration and AOT
    dispatch of mmfast::rsmma_fwd, and of mmfast::rsmma_bwd on its own."""
    if impl == "gather":
        if DEVICE != "cpu":
            pytest.skip("the gather implementation is the CPU one")
        request.getfixturevalue("gather_impl")
    q, k, v, shift_t, shift, f, w, scale = _op_args(shift_tensor)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    torch.library.opcheck(
        torch.ops.mmfast.rsmma_fwd.default, (q, k, v, shift_t, shift, f, w, scale)
    )
    out, lse = torch.ops.mmfast.rsmma_fwd(
        q.detach(), k.detach(), v.detach(), shift_t, shift, f, w, scale
    )
    dout = torch.randn_like(out)
    torch.library.opcheck(
        torch.ops.mmfast.rsmma_bwd.default,
        (dout, q.detach(), k.detach(), v.detach(), out, lse, shift_t, shift, f, w, scale),
    )


@pytest.mark.parametrize("impl", ["kernel", "gather"])
def test_backend_gradients_match_naive(request, impl):
    """Through rsmma_attention(backend="triton") and autograd, against "naive" in float64."""
    if impl == "gather":
        if DEVICE != "cpu":
            pytest.skip("the gather implementation is the CPU one")
        request.getfixturevalue("gather_impl")
    q, k, v, dout = make_inputs(2, 2, 8, 5, 4, 16, torch.float32, seed=12)
    shift = torch.tensor([7, 2], device=q.device)
    results = []
    for backend, dtype in (("triton", torch.float32), ("naive", torch.float64)):
        leaves = [t.detach().to(dtype).clone().requires_grad_() for t in (q, k, v)]
        out = rsmma_attention(*leaves, 8, 3, shift, backend=backend)
        out.backward(dout.to(dtype))
        results.append([out.detach()] + [t.grad for t in leaves])
    for name, got, want in zip(("out", "dq", "dk", "dv"), *results):
        assert got.dtype == torch.float32
        assert rel_err(got, want) < 1e-5, name


def test_lse_is_not_differentiable():
    q, k, v, shift_t, shift, f, w, scale = _op_args(False)
    out, lse = torch.ops.mmfast.rsmma_fwd(q.requires_grad_(), k, v, shift_t, shift, f, w, scale)
    assert out.requires_grad and not lse.requires_grad


@needs_cpu
def test_auto_never_picks_the_interpreter_on_cpu():
    q, k, v, _ = make_inputs(1, 1, 4, 2, 2, 16, torch.float32, seed=0)
    assert rsmma_triton.uses_kernel(q.device)  # the interpreter is on in these tests
    assert rsmma_backend(q, k, v, 1, "auto").name == "gather"
    assert rsmma_backend(q, k, v, 1, "triton").name == "triton"


@needs_cpu
def test_triton_backend_names_what_it_cannot_run():
    q, k, v, _ = make_inputs(1, 1, 4, 2, 2, 16, torch.float64, seed=0)
    with pytest.raises(ValueError, match=r"backend 'triton' cannot run .* got torch.float64"):
        rsmma_attention(q, k, v, 4, 2, 1, backend="triton")
    assert rsmma_attention(q, k, v, 4, 2, 1).dtype == torch.float64  # auto: gather
    q, k, v, _ = make_inputs(1, 1, 4, 2, 2, 24, torch.float32, seed=0)
    with pytest.raises(ValueError, match=r"head dims \(16, 32, 64, 128\), got 24"):
        rsmma_attention(q, k, v, 4, 2, 1, backend="triton")


def _tiny_inputs(b: int, seed: int, size: int = 32, length: int = 4096):
    """Inputs of the tiny preset; smaller sizes keep the interpreted kernels quick: 16x16 video and
    1024 audio samples give RS-MMA segments of 16, 4 and 1 audio samples and 64, 16, 4 video
    tokens."""
    cfg = get_config("tiny")
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, cfg.video_frames, cfg.video_channels, size, size, generator=g)
    audio = torch.randn(b, cfg.audio_channels, length, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g).float()
    return [x.to(DEVICE) for x in (video, audio, t)]


@pytest.fixture(scope="module")
def tiny():
    return randomize_(CoupledUNet("tiny"), seed=3).eval().to(DEVICE)


@pytest.mark.slow
def test_tiny_unet_triton_matches_naive(tiny):
    """The whole coupled U-Net with every RS-MMA block on the fused kernels (interpreted on the
    CPU), per-sample shifts, against the naive backend."""
    video, audio, t = _tiny_inputs(2, seed=1, size=16, length=1024)
    shift = torch.tensor([3, 14], device=DEVICE)
    outs = {}
    with torch.no_grad():
        for backend in ("naive", "triton"):
            tiny.set_attention_backend(backend)
            outs[backend] = tiny(video, audio, t, shift=shift)
        tiny.set_attention_backend("naive")
        other = tiny(video, audio, t, shift=shift + 1)
    tiny.set_attention_backend("auto")
    for got, want, wrong in zip(outs["triton"], outs["naive"], other):
        assert torch.isfinite(got).all()
        assert rel_err(got, want) < 1e-5
        assert rel_err(wrong, want) > 1e-3  # the windows matter at this size: the check has teeth


def test_rsmma_block_gradients_match_naive():
    """One RS-MMA block (both directions, shared shift) trained through the kernels: every
    parameter's gradient matches the naive backend's."""
    torch.manual_seed(0)
    block = randomize_(CrossModalAttention(32, 4, 16, 8), seed=5).to(DEVICE)
    g = torch.Generator().manual_seed(2)
    video = torch.randn(2, 32, 8, 4, 4, generator=g).to(DEVICE)  # 8 frames of 16 tokens
    audio = torch.randn(2, 32, 8 * 25, generator=g).to(DEVICE)  # 8 segments of 25 samples
    shift = torch.tensor([6, 1], device=DEVICE)
    grads = {}
    for backend in ("naive", "triton"):
        block.backend = backend
        block.zero_grad()
        v, a = block(video, audio, shift)
        (v.square().mean() + a.square().mean()).backward()
        grads[backend] = {n: p.grad.clone() for n, p in block.named_parameters()}
    for name, want in grads["naive"].items():
        assert rel_err(grads["triton"][name], want) < 1e-5, name


@pytest.mark.parametrize("impl", ["kernel", "gather"])
def test_rsmma_block_trains_under_compile(request, impl):
    """fullgraph compile of one RS-MMA block, forward and backward (register_autograd under
    AOTAutograd), with a per-sample shift tensor."""
    if impl == "gather":
        if DEVICE != "cpu":
            pytest.skip("the gather implementation is the CPU one")
        request.getfixturevalue("gather_impl")
    block = randomize_(CrossModalAttention(32, 2, 16, 8, backend="triton"), seed=6).to(DEVICE)
    g = torch.Generator().manual_seed(4)
    video = torch.randn(1, 32, 4, 2, 2, generator=g).to(DEVICE)
    audio = torch.randn(1, 32, 4 * 3, generator=g).to(DEVICE)
    shift = torch.tensor([3], device=DEVICE)
    grads = []
    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    try:
        for fn in (block, compiled):
            block.zero_grad()
            v, a = fn(video, audio, shift)
            (v.square().mean() + a.square().mean()).backward()
            grads.append([p.grad.clone() for p in block.parameters()])
    finally:
        torch._dynamo.reset()
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7)
    assert math.isfinite(sum(x.abs().sum().item() for x in grads[0]))


def test_import_leaves_triton_and_dynamo_alone():
    """Importing mmfast imports neither triton (TRITON_INTERPRET must be settable afterwards) nor
    torch._dynamo; the capability check still carries assume_constant_result's mark."""
    script = "import sys, mmfast.models, mmfast.ops; print(sorted({'triton', 'torch._dynamo'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    from mmfast.ops import capability

    marked = torch.compiler.assume_constant_result(lambda: 0)
    for fn in (capability.cuda_capability, capability.interpreter_requested):
        assert marked._dynamo_marked_constant is fn._dynamo_marked_constant is True


def test_mmfast_imports_and_runs_without_triton():
    """With triton unimportable, mmfast.ops and the model import, auto runs gather, and asking for
    "triton" says why it cannot."""
    script = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "triton" or name.startswith("triton."):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Block())
        import torch
        import mmfast.models, mmfast.ops
        from mmfast.ops import rsmma_attention
        q = torch.randn(1, 2, 8, 16); k = torch.randn(1, 2, 12, 16)
        assert rsmma_attention(q, k, k, 4, 2, 1).shape == q.shape
        try:
            rsmma_attention(q, k, k, 4, 2, 1, backend="triton")
        except ValueError as e:
            assert "triton is not installed" in str(e), e
        else:
            raise AssertionError("backend='triton' ran without triton")
        assert "triton" not in sys.modules
        """
    )
    root = Path(__file__).resolve().parents[2]  # this checkout's mmfast, not an installed one
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 0, result.stderr

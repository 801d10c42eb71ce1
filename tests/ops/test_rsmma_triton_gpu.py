"""GPU-only checks of the RS-MMA kernels: bf16, the model's real shapes and head dims, CUDA-graph
capture with a device-side shift tensor, Inductor compile of the tiny U-Net, and a speed sanity
check against the gather path. Skipped without CUDA (written without a GPU at hand: run them)."""

from __future__ import annotations

import pytest
import torch
from helpers import randomize_
from rsmma_cases import MODEL_SHAPES, check_case, make_inputs, rel_err

from mmfast.kernels.rsmma_bwd import rsmma_bwd
from mmfast.kernels.rsmma_fwd import rsmma_fwd
from mmfast.models import CoupledUNet, get_config
from mmfast.ops import rsmma_attention, rsmma_backend

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def _sm80() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", MODEL_SHAPES, ids=lambda s: "SQ{}-SK{}-W{}".format(*s))
def test_model_shapes(shape, dtype):
    sq, sk, w = shape
    check_case(2, 2, 16, sq, sk, 64, w, [3, 14], dtype, seed=sq * 7 + sk + w)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("d", [32, 128])  # 64 above, 16 in the tiny U-Net (test_rsmma_op.py)
def test_head_dims(d, dtype):
    check_case(2, 3, 16, 25, 100, d, 8, [0, 9], dtype, seed=d)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_awkward_shapes(dtype):
    for sq, sk, w in [(1, 25, 8), (33, 1, 16), (100, 33, 1), (25, 100, 16)]:
        check_case(2, 2, 16, sq, sk, 64, w, [5, 12], dtype, seed=sq + sk)


def test_auto_picks_triton_on_sm80():
    q, k, v, _ = make_inputs(1, 1, 4, 2, 2, 64, torch.bfloat16, seed=0, device="cuda")
    want = "triton" if _sm80() else "gather"
    assert rsmma_backend(q, k, v, 1, "auto").name == want


def test_cuda_graph_replays_with_new_device_shifts():
    """The per-sample shift is read on the device: a captured graph (forward and backward) follows
    new values copied into the shift tensor, with no host sync and no recapture."""
    f, w = 16, 4
    q, k, v, dout = make_inputs(2, 2, f, 25, 64, 64, torch.bfloat16, seed=1, device="cuda")
    shift = torch.tensor([0, 5], device="cuda")

    def step():
        out, lse = rsmma_fwd(q, k, v, f, w, shift)
        return (out, *rsmma_bwd(dout, q, k, v, out, lse, f, w, shift))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # compiles the kernels outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    for new in ([3, 15], [7, -1], [16, 2]):
        shift.copy_(torch.tensor(new))
        graph.replay()
        torch.cuda.synchronize()
        fresh_shift = torch.tensor(new, device="cuda")
        out, lse = rsmma_fwd(q, k, v, f, w, fresh_shift)
        fresh = (out, *rsmma_bwd(dout, q, k, v, out, lse, f, w, fresh_shift))
        for got, want in zip(captured, fresh):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.slow
def test_tiny_unet_compiles_with_inductor():
    """fullgraph=True with Inductor on the GPU, `auto` = the kernels: forward and every gradient
    match eager mode, and eager mode matches the naive backend (fp32 throughout: conftest turns
    TF32 off)."""
    cfg = get_config("tiny")
    model = randomize_(CoupledUNet("tiny"), seed=3).cuda().train()
    g = torch.Generator().manual_seed(0)
    video = torch.randn(2, 16, 3, cfg.video_size, cfg.video_size, generator=g).cuda()
    audio = torch.randn(2, 1, cfg.audio_length, generator=g).cuda()
    t = torch.tensor([10.0, 500.0], device="cuda")
    shift = torch.tensor([2, 11], device="cuda")
    results = {}
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    for name, fn, backend in (
        ("naive", model, "naive"),
        ("eager", model, "auto"),
        ("compiled", compiled, "auto"),
    ):
        model.set_attention_backend(backend)
        model.zero_grad()
        v, a = fn(video, audio, t, shift=shift)
        (v.square().mean() + a.square().mean()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[name] = (v.detach(), a.detach(), grads)
    torch._dynamo.reset()
    model.set_attention_backend("auto")
    for other, tol in (("compiled", 1e-4), ("naive", 1e-4)):
        for x, y in zip(results[other][:2], results["eager"][:2]):
            assert rel_err(x, y) < tol, other
        for n, want in results["eager"][2].items():
            assert rel_err(results[other][2][n], want) < tol, (other, n)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [MODEL_SHAPES[0], MODEL_SHAPES[4]], ids=["SQ400-W1", "SQ25-W8"])
def test_speed_against_gather(shape):
    """bf16 fwd and fwd+bwd at batch 8, 8 heads, two of the model's shapes (the benchmark suite
    times them all): prints both timings (-s shows them) and fails only if the fused kernels are
    more than twice as slow as gathered windows + SDPA."""
    from triton.testing import do_bench

    sq, sk, w = shape
    q, k, v, dout = make_inputs(8, 8, 16, sq, sk, 64, torch.bfloat16, seed=0, device="cuda")
    shift = torch.randint(0, 16, (8,), device="cuda")
    times = {}
    for backend in ("triton", "gather"):
        leaves = [x.detach().clone().requires_grad_() for x in (q, k, v)]

        def fwd(backend=backend, leaves=leaves):
            return rsmma_attention(*leaves, 16, w, shift, backend=backend)

        def fwd_bwd(fwd=fwd, leaves=leaves):
            fwd().backward(dout)
            for x in leaves:
                x.grad = None

        times[backend] = (do_bench(fwd), do_bench(fwd_bwd))
    print(
        f"\nRS-MMA SQ={sq} SK={sk} W={w}: triton fwd {times['triton'][0]:.3f} ms, "
        f"fwd+bwd {times['triton'][1]:.3f} ms | gather fwd {times['gather'][0]:.3f} ms, "
        f"fwd+bwd {times['gather'][1]:.3f} ms"
    )
    assert times["triton"][0] < 2 * times["gather"][0]
    assert times["triton"][1] < 2 * times["gather"][1]

"""The Triton dilated conv (alone and after GroupNorm -> SiLU) against PyTorch in float64: outputs
and every gradient, poisoned outputs, shapes by property, registration, compile, errors.

Without CUDA the kernels run in the Triton interpreter on the CPU (fp32 and fp16, small shapes);
the bf16 and model-sized checks need a GPU and are skipped here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mmfast.ops import gn_silu_conv1d, gn_silu_conv1d_plain, gn_silu_conv_backend
from mmfast.ops.gn_silu_conv_reference import gn_silu_conv1d_reference

CUDA = torch.cuda.is_available()
if not CUDA:
    # Read when the kernels are first imported, which the ops do on their first call.
    os.environ.setdefault("TRITON_INTERPRET", "1")
DEVICE = "cuda" if CUDA else "cpu"
HAS_TRITON = importlib.util.find_spec("triton") is not None
pytestmark = pytest.mark.skipif(
    not HAS_TRITON or not (CUDA or os.environ.get("TRITON_INTERPRET") == "1"),
    reason="needs triton and a GPU or the Triton interpreter",
)
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

# Tolerance: the kernel's error may be 4x PyTorch's own error at the test dtype, plus this floor.
FLOOR = {torch.float32: 2e-6, torch.float16: 5e-4, torch.bfloat16: 4e-3}
INTERPRETER_DTYPES = [torch.float32, torch.float16]  # the interpreter's bf16 tl.dot is wrong
DTYPES = [torch.float32, torch.float16, torch.bfloat16] if CUDA else INTERPRETER_DTYPES
NAMES = ("x", "norm_weight", "norm_bias", "weight", "bias")


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64."""
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm()).item()


def make_inputs(b, c_in, c_out, length, k, norm, bias, dtype, seed, device=DEVICE):
    """(x, norm_weight, norm_bias, weight, bias, dy) drawn from a seeded generator; x has a
    non-zero mean so that the norm matters; norm parameters stay fp32 (GroupNorm32's)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c_in, length, generator=g) * 1.5 + 0.7
    nw = 1 + 0.5 * torch.randn(c_in, generator=g) if norm else None
    nb = 0.5 * torch.randn(c_in, generator=g) if norm else None
    w = torch.randn(c_out, c_in, k, generator=g) / (c_in * k) ** 0.5
    bb = 0.3 * torch.randn(c_out, generator=g) if bias else None
    dy = torch.randn(b, c_out, length, generator=g)

    def put(t, dt):
        return None if t is None else t.to(device=device, dtype=dt)

    return (
        put(x, dtype),
        put(nw, torch.float32),
        put(nb, torch.float32),
        put(w, dtype),
        put(bb, dtype),
        put(dy, dtype),
    )


def run(tensors, dy, groups, dilation, backend, eps=1e-5):
    """Output and gradients (None for absent tensors) of the public op on fresh leaves."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in tensors]
    x, nw, nb, w, b = leaves
    if nw is None:
        y = gn_silu_conv1d_plain(x, w, b, dilation, backend=backend)
    else:
        y = gn_silu_conv1d(x, nw, nb, groups, w, b, dilation, eps, backend=backend)
    y.backward(dy)
    return y.detach(), [None if t is None else t.grad for t in leaves]


def run_float64(tensors, dy, groups, dilation, eps=1e-5):
    leaves = [None if t is None else t.detach().double().requires_grad_() for t in tensors]
    x, nw, nb, w, b = leaves
    if nw is None:
        y = gn_silu_conv1d_plain(x, w, b, dilation, backend="torch")
    else:
        y = gn_silu_conv1d_reference(x, nw, nb, groups, w, b, dilation, eps)
    y.backward(dy.double())
    return y.detach(), [None if t is None else t.grad for t in leaves]


def check_against_float64(tensors, dy, groups, dilation, dtype) -> dict[str, float]:
    """Assert the Triton op's output and gradients are within the tolerance rule; returns the
    errors."""
    out, grads = run(tensors, dy, groups, dilation, "triton")
    ref_out, ref_grads = run(tensors, dy, groups, dilation, "torch")
    f64_out, f64_grads = run_float64(tensors, dy, groups, dilation)
    errors = {}
    pairs = [("y", out, ref_out, f64_out)]
    pairs += [
        (n, a, r, f) for n, a, r, f in zip(NAMES, grads, ref_grads, f64_grads) if f is not None
    ]
    for name, got, ref, f64 in pairs:
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        assert torch.isfinite(got).all(), f"{name} has non-finite values (unwritten memory?)"
        err, ref_err = rel_err(got, f64), rel_err(ref, f64)
        assert err <= 4 * ref_err + FLOOR[dtype], (
            f"{name}: error {err:.2e} against float64, PyTorch's own at {dtype} {ref_err:.2e}"
        )
        errors[name] = err
    return errors


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 in IEEE on GPUs for both the kernels and cuDNN (TF32 has its own test); cuDNN takes
    TF32 for some shapes only, which would make PyTorch's error no measure of the kernel's."""
    was = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = was


@pytest.fixture
def poisoned():
    """Every torch.empty returns NaNs meanwhile, so memory a kernel fails to write shows."""
    was, fill = (
        torch.are_deterministic_algorithms_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(was)
    torch.utils.deterministic.fill_uninitialized_memory = fill


# (B, Cin, Cout, L, dilation, K, groups, norm, bias); the interpreter's tiles are 64 (time) x 64
# (output channels) x 32 (reduction channels), so these cross tile edges on every axis.
CASES = {
    "d1": (2, 40, 72, 150, 1, 3, 8, True, True),
    "d2-groups-of-5": (2, 40, 24, 101, 2, 3, 8, True, False),
    "d7-no-norm": (2, 40, 72, 150, 7, 3, 1, False, True),
    "d64-Cout-lt-Cin": (1, 70, 24, 130, 64, 3, 5, True, True),
    # Tile 0's back tap and tile 1's forward tap each reach exactly one element of the sequence.
    "d63-tap-edges": (1, 20, 20, 128, 63, 3, 4, True, True),
    "d512-L400": (1, 36, 20, 400, 512, 3, 4, True, True),
    "d512-L45": (2, 8, 12, 45, 512, 3, 2, True, True),
    "d256-L400-no-norm": (1, 24, 20, 400, 256, 3, 1, False, True),
    "k1": (2, 33, 65, 70, 3, 1, 3, True, True),
    "k5-d3": (1, 16, 20, 90, 3, 5, 16, True, True),
    "k7-d9": (1, 16, 20, 90, 9, 7, 1, True, False),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("case", list(CASES))
def test_matches_float64(case, dtype, poisoned):
    b, c_in, c_out, length, dilation, k, groups, norm, bias = CASES[case]
    seed = list(CASES).index(case)
    *tensors, dy = make_inputs(b, c_in, c_out, length, k, norm, bias, dtype, seed)
    check_against_float64(tensors, dy, groups, dilation, dtype)


@pytest.mark.skipif(CUDA, reason="on a GPU every test runs the GPU tiles")
@pytest.mark.parametrize("arch", [90, 80], ids=lambda a: f"sm{a}")
@pytest.mark.parametrize("dtype", INTERPRETER_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_the_gpu_tiles_in_the_interpreter(dtype, arch, poisoned, monkeypatch):
    """The launchers' GPU tile configs run in the interpreter, which the other CPU tests never
    reach: a stand-in device of 2 SMs makes this shape take the long tiles, and 130 output and 72
    input channels cross every tile edge. sm_90: forward long 128 x 128 x 64, input gradient
    128 x 64, weight gradient 64 x 128 x 64 with a split time reduction. sm_80 (mma.sync keeps
    operand fragments in registers; tests/ops/check_compile.py found the spills): 128 x 64 tiles,
    64 x 64 weight tiles, and with IEEE fp32 dots 16 reduction channels and 32 time steps."""
    from mmfast.kernels import device
    from mmfast.kernels.gn_silu_conv_bwd import DW_CONFIGS, dw_config, dx_config
    from mmfast.kernels.gn_silu_conv_fwd import CONV_CONFIGS, conv_config

    monkeypatch.setattr(device, "sms", lambda x: 2)
    monkeypatch.setattr(device, "arch", lambda x: arch)
    monkeypatch.setattr(device, "allow_tf32_convs", lambda: False)  # fp32: IEEE dots
    x = torch.empty(1, 72, 300, dtype=dtype)
    assert dx_config(1, 300, 130, x)["BLOCK_OUT"] == 64
    ieee = dtype == torch.float32
    if arch == 90:
        assert conv_config(1, 300, 130, x)["BLOCK_OUT"] == CONV_CONFIGS["long"]["BLOCK_OUT"] == 128
        assert dw_config(x) == DW_CONFIGS["gpu"]
    else:
        cfg = conv_config(1, 300, 130, x)
        assert (cfg["BLOCK_L"], cfg["BLOCK_OUT"], cfg["BLOCK_RED"]) == (128, 64, 16 if ieee else 64)
        dw = dw_config(x)
        assert (dw["BLOCK_IN"], dw["BLOCK_OUT"], dw["BLOCK_L"]) == (64, 64, 32 if ieee else 64)
    *tensors, dy = make_inputs(1, 72, 130, 300, 3, True, True, dtype, seed=21)
    check_against_float64(tensors, dy, 8, 5, dtype)
    *tensors, dy = make_inputs(1, 130, 72, 300, 3, True, True, dtype, seed=22)  # dx: 130 wide
    check_against_float64(tensors, dy, 10, 5, dtype)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    b=st.integers(1, 3),
    c_in=st.integers(1, 70),
    c_out=st.integers(1, 70),
    length=st.integers(1, 140),
    dilation=st.sampled_from([1, 2, 3, 7, 31, 63, 64, 127, 200, 512]),
    k=st.sampled_from([1, 3, 5, 7]),
    groups_pick=st.integers(0, 10),
    norm=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_over_shapes(
    b, c_in, c_out, length, dilation, k, groups_pick, norm, bias, seed, poisoned
):
    divisors = [g for g in range(1, c_in + 1) if c_in % g == 0]
    groups = divisors[groups_pick % len(divisors)]
    # A one-element group normalises to beta exactly: dx is 0 and its relative error undefined.
    assume(not norm or (c_in // groups) * length >= 2)
    *tensors, dy = make_inputs(b, c_in, c_out, length, k, norm, bias, torch.float32, seed)
    check_against_float64(tensors, dy, groups, dilation, torch.float32)


def test_gn_silu_conv_stats_kernel():
    """Welford statistics against float64, with a mean far above the spread and a group longer
    than one step of the loop."""
    from mmfast.kernels.gn_silu_conv_stats import gn_silu_conv_stats

    g = torch.Generator().manual_seed(7)
    for shape, groups, offset in [((2, 12, 1500), 2, 300.0), ((3, 5, 17), 5, -2.0)]:
        x = (torch.randn(*shape, generator=g) * 0.1 + offset).to(DEVICE)
        mean, rstd = gn_silu_conv_stats(x, groups, 1e-5)
        var64, mean64 = torch.var_mean(x.double().view(shape[0], groups, -1), -1, correction=0)
        torch.testing.assert_close(mean.double(), mean64, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(rstd.double(), (var64 + 1e-5).rsqrt(), rtol=2e-5, atol=0)


def test_only_requested_gradients(poisoned):
    """Frozen weights (input side only) or a frozen input (weight side only) give the same
    gradients as the full backward."""
    *tensors, dy = make_inputs(2, 20, 16, 70, 3, True, True, torch.float32, seed=3)
    _, full = run(tensors, dy, 4, 5, "triton")
    for trainable in ((0, 1, 2), (3, 4)):
        leaves = [t.detach().clone().requires_grad_(i in trainable) for i, t in enumerate(tensors)]
        x, nw, nb, w, b = leaves
        gn_silu_conv1d(x, nw, nb, 4, w, b, 5, backend="triton").backward(dy)
        for i, t in enumerate(leaves):
            if i in trainable:
                torch.testing.assert_close(t.grad, full[i], rtol=1e-6, atol=1e-6)
            else:
                assert t.grad is None


def test_opcheck():
    *tensors, _ = make_inputs(2, 12, 8, 20, 3, True, True, torch.float32, seed=5)
    x, nw, nb, w, b = (t.requires_grad_() for t in tensors)
    op = torch.ops.mmfast.gn_silu_conv_fwd.default
    torch.library.opcheck(op, (x, nw, nb, w, b, 3, 2, 1e-5))
    torch.library.opcheck(op, (x, None, None, w, None, 1, 7, 0.0))


@pytest.mark.parametrize("backend", ["triton", "auto"])
def test_compiles_without_graph_breaks(backend):
    *tensors, dy = make_inputs(2, 16, 12, 40, 3, True, True, torch.float32, seed=6)

    def f(x, nw, nb, w, b):
        return gn_silu_conv1d(x, nw, nb, 4, w, b, 3, backend=backend).square().sum()

    # The CPU inductor would compile C++ for minutes; aot_eager still traces forward and backward.
    compiler = "inductor" if CUDA else "aot_eager"
    compiled = torch.compile(f, fullgraph=True, backend=compiler)
    grads = []
    for fn in (compiled, f):
        leaves = [t.detach().clone().requires_grad_() for t in tensors]
        fn(*leaves).backward()
        grads.append([t.grad for t in leaves])
    for name, a, e in zip(NAMES, *grads):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5, msg=name)


def test_autocast_casts_the_conv_operands():
    """Under autocast the Triton path runs the conv in the autocast dtype, as nn.Conv1d would."""
    device, dtype = (DEVICE, torch.bfloat16) if CUDA else ("cpu", torch.float16)
    *tensors, _ = make_inputs(1, 16, 24, 70, 3, True, True, torch.float32, seed=8)
    x, nw, nb, w, b = tensors
    with torch.autocast(device, dtype=dtype):
        y = gn_silu_conv1d(x, nw, nb, 4, w, b, 2, backend="triton")
        ref = gn_silu_conv1d(x, nw, nb, 4, w, b, 2, backend="torch")
    f64 = gn_silu_conv1d_reference(
        *(t.double() for t in (x, nw, nb)), 4, w.double(), b.double(), 2, 1e-5
    )
    assert y.dtype == ref.dtype == dtype
    assert rel_err(y, f64) <= 4 * rel_err(ref, f64) + FLOOR[dtype]


def test_auto_never_picks_the_interpreter():
    x = torch.randn(1, 4, 8)
    assert gn_silu_conv_backend(x, "auto").name == "torch"
    assert gn_silu_conv_backend(x.double(), "auto").name == "torch"
    if CUDA and torch.cuda.get_device_capability() >= (8, 0):
        assert gn_silu_conv_backend(x.cuda(), "auto").name == "triton"
        assert gn_silu_conv_backend(x.cuda().double(), "auto").name == "torch"


def test_without_triton_import_works_and_auto_takes_torch():
    """In a fresh interpreter where `import triton` fails: mmfast imports, auto runs PyTorch, and
    an explicit "triton" names the reason."""
    script = textwrap.dedent(
        """
        import sys
        import torch
        sys.modules["triton"] = None  # import triton now raises ImportError
        from mmfast.models import CoupledUNet
        from mmfast.ops import gn_silu_conv1d_plain
        x, w = torch.randn(1, 4, 8), torch.randn(4, 4, 3)
        assert torch.equal(gn_silu_conv1d_plain(x, w), gn_silu_conv1d_plain(x, w, backend="torch"))
        try:
            gn_silu_conv1d_plain(x, w, backend="triton")
        except ValueError as e:
            assert "triton is not installed" in str(e), e
        else:
            raise AssertionError("no error")
        """
    )
    root = str(Path(__file__).resolve().parents[2])  # this checkout's mmfast, not an installed one
    env = {**os.environ, "PYTHONPATH": root}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)


def test_backend_errors_are_named(monkeypatch):
    x, w = torch.randn(1, 4, 8), torch.randn(4, 4, 3)
    with pytest.raises(ValueError, match="unknown backend 'cudnn'; expected 'auto' or one of"):
        gn_silu_conv1d_plain(x, w, backend="cudnn")
    with pytest.raises(ValueError, match="dtype torch.float64 is not one of float16"):
        gn_silu_conv1d_plain(x.double(), w.double(), backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"run only in the Triton interpreter \(set TRITON_"):
        gn_silu_conv1d_plain(x, w, backend="triton")


def _args(**changes) -> dict:
    args = dict(
        x=torch.randn(2, 8, 16),
        norm_weight=torch.ones(8),
        norm_bias=torch.zeros(8),
        groups=4,
        weight=torch.randn(6, 8, 3),
        bias=torch.zeros(6),
        dilation=2,
        eps=1e-5,
    )
    return {**args, **changes}


BAD_INPUTS = {
    "x-list": (dict(x=[1.0]), TypeError, r"x must be a torch.Tensor \[B, Cin, L\], got list"),
    "x-2d": (
        dict(x=torch.randn(8, 16)),
        ValueError,
        r"x must be \[B, Cin, L\], got shape \(8, 16\)",
    ),
    "x-int": (dict(x=torch.ones(2, 8, 16, dtype=torch.int32)), TypeError, "floating-point.*int32"),
    "x-empty": (dict(x=torch.randn(2, 8, 0)), ValueError, "positive length"),
    "weight-cin": (
        dict(weight=torch.randn(6, 7, 3)),
        ValueError,
        r"weight must be \[Cout, Cin=8, K\]",
    ),
    "weight-even-k": (
        dict(weight=torch.randn(6, 8, 4)),
        ValueError,
        "kernel size must be odd.*K=4",
    ),
    "bias-shape": (dict(bias=torch.zeros(5)), ValueError, r"bias must be \[Cout=6\], got \(5,\)"),
    "dilation-0": (dict(dilation=0), ValueError, "dilation must be a positive int, got 0"),
    "dilation-float": (dict(dilation=2.0), ValueError, "dilation must be a positive int, got 2.0"),
    "groups": (dict(groups=3), ValueError, "groups=3 must divide the 8 input channels"),
    "norm-shape": (dict(norm_weight=torch.ones(4)), ValueError, r"norm_weight must be \[Cin=8\]"),
    "eps": (dict(eps=-1.0), ValueError, "eps must be a non-negative float"),
    "weight-dtype": (
        dict(weight=torch.randn(6, 8, 3).double()),
        TypeError,
        "weight must have x's dtype torch.float32, got torch.float64",
    ),
    "bias-device": (
        dict(bias=torch.zeros(6, device="meta")),
        ValueError,
        "bias must be on x's device",
    ),
}


@pytest.mark.parametrize("changes,err,match", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_inputs_are_named(changes, err, match):
    for backend in ("torch", "triton"):
        with pytest.raises(err, match=match):
            gn_silu_conv1d(**_args(**changes), backend=backend)


# ---- GPU only: bf16 and the model's shapes, run by the GPU check script.

MODEL_SHAPES = {
    # (B, Cin, Cout, L, dilation): levels of mmdiffusion-64's audio U-Net
    "L25600-C128-d2": (1, 128, 128, 25600, 2),
    "L6400-C384-256-d32": (2, 384, 256, 6400, 32),
    "L1600-C384-d512": (2, 384, 384, 1600, 512),
    "L400-C1024-512-d512": (4, 1024, 512, 400, 512),
    "L400-C512-d256": (3, 512, 512, 400, 256),
}


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape", list(MODEL_SHAPES))
def test_model_shapes_on_gpu(shape, dtype, poisoned):
    b, c_in, c_out, length, dilation = MODEL_SHAPES[shape]
    *tensors, dy = make_inputs(b, c_in, c_out, length, 3, True, True, dtype, seed=length)
    check_against_float64(tensors, dy, 32, dilation, dtype)


@needs_cuda
def test_tf32_on_gpu(poisoned):
    """With cuDNN's TF32 flag on (PyTorch's default), fp32 inputs take TF32 tensor cores: each
    operand rounded to 10 mantissa bits (2^-11 = 4.9e-4 relative), so 4x that bounds the error."""
    torch.backends.cudnn.allow_tf32 = True
    *tensors, dy = make_inputs(2, 384, 256, 1600, 3, True, True, torch.float32, seed=11)
    out, grads = run(tensors, dy, 32, 128, "triton")
    f64_out, f64_grads = run_float64(tensors, dy, 32, 128)
    for name, got, f64 in zip(("y", *NAMES), (out, *grads), (f64_out, *f64_grads)):
        assert rel_err(got, f64) < 2e-3, name

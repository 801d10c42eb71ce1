"""RS-MMA forward: random-shift windowed cross attention, fused (FlashAttention-2 style).

    out[b, h, q] = softmax_k(scale * q . k over the window of q's segment) @ v,
    lse[b, h, q] = log sum_k exp(scale * q . k) over the same window (natural log, fp32).

q: [B, H, Lq, D], k, v: [B, H, Lk, D]; F segments of SQ = Lq/F queries and SK = Lk/F keys. Query
segment i sees key segments (i + r_b + s) mod F, s = 0..W-1. Those W segments are one contiguous run
of W*SK key tokens that starts at ((i + r_b) mod F) * SK and wraps cyclically at Lk, so the key
loop walks a token range with the wrap applied per tile: no index tables, no gathered copies, and
no padding between short segments (a segment of 25 keys is not rounded up to a block).

A program owns BLOCK_Q query rows: either a tile of one long segment, or G = BLOCK_Q // SQ whole
short segments. G consecutive segments see a run of W + G - 1 key segments, and a row of relative
segment g takes the keys of relative tokens [g*SK, (g+W)*SK) of that run (a mask).
The same tiling serves the backward kernels (`kernels/rsmma_bwd.py`), with keys and queries swapped
for dK/dV. After the Triton tutorial `06-fused-attention.py` and FlashAttention-2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from mmfast.kernels import device

LOG2E = 1.4426950408889634
HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def interpreted() -> bool:
    """True when these kernels were built by the Triton interpreter (TRITON_INTERPRET=1 when this
    module was imported): they then run on CPU tensors, slowly."""
    return not isinstance(rsmma_fwd_kernel, triton.runtime.JITFunction)


# ----------------------------------------------------------------------------- jit helpers
@triton.jit
def _shift_of(i_b, shift, p_shift, F, HAS_SHIFT_TENSOR: tl.constexpr):
    """The window shift of sample i_b in [0, F): from the device tensor (no host sync) or the int."""
    if HAS_SHIFT_TENSOR:  # noqa: SIM108 (a statically resolved branch; types differ)
        r = tl.load(p_shift + i_b)
    else:
        r = shift
    # ((r % F) + F) % F is the floor modulo under both C (GPU) and numpy (interpreter) semantics.
    return (((r % F) + F) % F).to(tl.int32)


@triton.jit
def _own_rows(i_own, SEG, F, segs_per_prog, tiles_per_seg, BLOCK: tl.constexpr):
    """The rows a program owns along its own axis (queries in fwd / dQ, keys in dK/dV).

    Returns the first owned segment, the number of owned segments, the rows' token indices,
    their validity mask and their segment relative to the first (each [BLOCK]).
    """
    seg0 = (i_own // tiles_per_seg) * segs_per_prog
    n_seg = tl.minimum(segs_per_prog, F - seg0)
    o_in = (i_own % tiles_per_seg) * BLOCK + tl.arange(0, BLOCK)  # rows from seg0's first token
    m_row = o_in < n_seg * SEG
    return seg0, n_seg, seg0 * SEG + o_in, m_row, o_in // SEG


@triton.jit
def _run_mask(o_t, g, SEG_L, W):
    """[BLOCK_OWN, BLOCK_L] mask: relative run token o_t is in the window of a row of segment g."""
    lo = g * SEG_L
    return (o_t[None, :] >= lo[:, None]) & (o_t[None, :] < (lo + W * SEG_L)[:, None])


# ----------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class TileConfig:
    """Tiling of one kernel: BLOCK_OWN rows per program, BLOCK_LOOP tokens per loop step."""

    block_own: int
    block_loop: int
    num_warps: int
    num_stages: int


# Assumed relative tensor-core throughput per row of tile on sm_90 (not measured: no GPU was at
# hand). 64 rows is one warpgroup's wgmma; 16 and 32 fall back to mma.sync.
_TILE_SPEED = {128: 1.0, 64: 0.9, 32: 0.6, 16: 0.35}


def own_tiling(seg_len: int, n_segments: int, block: int) -> tuple[int, int]:
    """(segments per program G, tiles per segment T) for BLOCK rows over segments of seg_len."""
    if 2 * seg_len <= block:
        return min(block // seg_len, n_segments), 1
    return 1, triton.cdiv(seg_len, block)


def _own_efficiency(seg_len: int, n_segments: int, window: int, block: int) -> float:
    """Useful / computed score entries of the owned rows, times the assumed tile speed."""
    g, t = own_tiling(seg_len, n_segments, block)
    useful = g * seg_len * window
    computed = t * block * (window + g - 1)
    return useful / computed * _TILE_SPEED[block]


def _loop_efficiency(run: int, block: int) -> float:
    return run / (triton.cdiv(run, block) * block) * _TILE_SPEED[block]


def pick_config(
    seg_own: int,
    seg_loop: int,
    n_segments: int,
    window: int,
    head_dim: int,
    max_own: int = 128,
    max_loop: int = 64,
    accumulators: int = 1,
    fp32: bool = False,
    arch: int = 90,
) -> TileConfig:
    """A tiling for segments of seg_own owned rows that loop over runs of seg_loop-token segments.

    BLOCK_OWN maximises useful MMA rows (padding of a tile, and the W + G - 1 run of G packed short
    segments) weighted by the assumed tile speed; BLOCK_LOOP does the same for the tail of the run.
    """
    # max_own / max_loop bound the register tiles: [BLOCK_OWN, D] accumulators plus a
    # [BLOCK_OWN, BLOCK_LOOP] score tile per program. Exact fp32 products have no tensor-core path
    # (FMA dots keep both operands in registers): ptxas for sm_90 spilled every 128-row fp32 tile,
    # and at D = 128 every tile above 16 x 16 on 8 warps. At D = 64, 64 x 32 tiles on 8 warps
    # spilled in one version or the other (Triton 3.6: the dK/dV kernel, 255 registers and 456-472
    # bytes of stack; Triton 3.8: the forward at window 1, 16 bytes of spill stores), and 64 x 16
    # tiles spill in neither (106-124 registers): one choice for both versions.
    if fp32:
        max_own = min(max_own, 64 if head_dim <= 64 else 16)
        max_loop = min(max_loop, 16)
    if fp32 and arch < 90:
        # Before Hopper, ptxas held 8-warp fp32 tiles of D = 64 to 64-80 registers and spilled
        # 8-16 bytes (sm_80 and sm_86: the forward's and dQ's 64 x 16 tiles), and 64 x 16 tiles on
        # 4 warps still took 255 registers and 8 bytes on sm_86; 32 x 16 tiles on 4 warps take
        # 72-110 registers in all three kernels (D = 128: 16 x 16, 70-91).
        max_own = min(max_own, 32)
    if arch < 80:
        # The ops never launch these kernels below sm_80 (tl.dot has no tensor-core path there);
        # a direct launch gets small single-stage tiles, within a T4's 64 KB of shared memory
        # (ptxas for sm_75: at D = 128 the backward's 64 x 32 tiles took 80 KB; 32 x 32 fit).
        max_own, max_loop = min(max_own, 64 if head_dim < 128 else 32), min(max_loop, 32)
    owns = [b for b in (128, 64, 32, 16) if b <= max_own]
    block_own = max(owns, key=lambda b: _own_efficiency(seg_own, n_segments, window, b))
    g, _ = own_tiling(seg_own, n_segments, block_own)
    run = (window + g - 1) * seg_loop
    loops = [b for b in (64, 32, 16) if b <= max_loop]
    block_loop = max(loops, key=lambda b: _loop_efficiency(run, b))
    # 4 warps while the fp32 tiles (accumulators of [BLOCK_OWN, D] and two score-sized tiles)
    # take <= 96 registers per thread, else 8: ptxas for sm_90 spilled the dK/dV kernel at
    # 128 keys x 64 queries on 4 warps. Exact fp32 dots take 8 warps from D = 64; below, 8 warps
    # left ptxas at 80 registers with 8 bytes of spills (Triton 3.6 and 3.8, the forward at D = 32,
    # 25 queries x 64 keys) where 4 warps take 102-104 registers and none.
    # 2 stages for D = 128 keep the K/V ring near 100 KB.
    fp32_tiles = accumulators * block_own * head_dim + 2 * block_own * block_loop
    small = fp32_tiles <= 96 * 4 * 32 and (not fp32 or head_dim <= 32)
    num_warps = 8 if fp32 and arch < 90 else (4 if small else 8)
    if arch < 90 and head_dim >= 128 and not fp32:
        # ptxas for sm_80 held 64 x 32 tiles at D = 128 on 4 warps to 168 registers and spilled
        # 8 bytes (the forward, key segments of 64 and 100 tokens); on 8 warps they take 128-137.
        num_warps = 8
    num_stages = 2 if head_dim >= 128 or fp32 else 3
    if arch < 80:
        num_stages = 1
    return TileConfig(block_own, block_loop, num_warps, num_stages)


def fwd_config(
    seg_q: int,
    seg_k: int,
    n_segments: int,
    window: int,
    head_dim: int,
    fp32: bool = False,
    arch: int = 90,
) -> TileConfig:
    """The forward's tiling: queries owned, keys looped; arch: the compute capability (80: sm_80)."""
    # D = 128 keeps a [128, 128] fp32 accumulator, so the key tile stays at 64.
    max_own, max_loop = 128, 64
    if arch < 90:
        # Before Hopper the dots are mma.sync, whose operand fragments live in registers beside
        # the accumulator. ptxas (Triton 3.6 and 3.8, bf16): at D = 128, 128 x 64 tiles on 8 warps
        # took 255 registers and 56 bytes of stack on sm_80, and 64 x 64 ones were held to 128
        # registers with 16 bytes of spills on sm_86 (64 queries x 25 keys, window 8); 64 x 32 on
        # 8 warps took 128-137 and none in Triton 3.8 but spilled 24 bytes in 3.6 (256 queries x
        # 100 keys and 64 x 25, sm_80). 64 x 16 on 8 warps: 157-172 registers (3.6), 128-138
        # (3.8), no spills on sm_80/86/89 at any of the model's D = 128 launches, fp16 and bf16;
        # it keeps the 64-query tile (K/V read once per 64 queries; 32 x 32 on 4 warps, 122-128
        # registers, also fits but reads K/V twice as often).
        if head_dim >= 128:
            max_own, max_loop = 64, 16
        elif head_dim <= 32:
            max_loop = 32
    return pick_config(
        seg_q, seg_k, n_segments, window, head_dim, max_own, max_loop, fp32=fp32, arch=arch
    )


# ----------------------------------------------------------------------------- kernel
# shift is not specialised: Triton would make shift == 1 a constexpr and compile once more.
@triton.jit(do_not_specialize=["shift"])
def rsmma_fwd_kernel(
    p_q,
    p_k,
    p_v,
    p_out,
    p_lse,
    p_shift,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vl,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_ol,
    stride_od,
    H,
    SEG_Q,
    SEG_K,
    F,
    W,
    shift,
    segs_per_prog,
    tiles_per_seg,
    progs_per_bh,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_KV: tl.constexpr,
    HAS_SHIFT_TENSOR: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    # One launch over B * H * progs_per_bh programs; the query tiles of one (b, h) are adjacent so
    # that they share its K/V in L2.
    i_p = tl.program_id(0)
    i_bh = i_p // progs_per_bh
    i_b = i_bh // H
    i_h = i_bh % H
    r = _shift_of(i_b, shift, p_shift, F, HAS_SHIFT_TENSOR)
    seg0, n_seg, o_q, m_q, g = _own_rows(
        i_p % progs_per_bh, SEG_Q, F, segs_per_prog, tiles_per_seg, BLOCK_Q
    )
    o_d = tl.arange(0, HEAD_DIM)
    n_k = F * SEG_K
    k_start = ((seg0 + r) % F) * SEG_K
    run = (W + n_seg - 1) * SEG_K

    p_q += i_b.to(tl.int64) * stride_qb + i_h.to(tl.int64) * stride_qh
    p_k += i_b.to(tl.int64) * stride_kb + i_h.to(tl.int64) * stride_kh
    p_v += i_b.to(tl.int64) * stride_vb + i_h.to(tl.int64) * stride_vh
    p_q_tile = p_q + o_q.to(tl.int64)[:, None] * stride_ql + o_d[None, :] * stride_qd
    b_q = tl.load(p_q_tile, mask=m_q[:, None], other=0.0)  # [BLOCK_Q, HEAD_DIM]

    # Running max starts finite so that a row with no key in a tile yields alpha = 1, p = 0.
    b_m = tl.full([BLOCK_Q], -1.0e30, dtype=tl.float32)
    b_l = tl.zeros([BLOCK_Q], dtype=tl.float32)
    b_acc = tl.zeros([BLOCK_Q, HEAD_DIM], dtype=tl.float32)
    for t0 in range(0, run, BLOCK_KV):
        o_t = t0 + tl.arange(0, BLOCK_KV)  # relative tokens of the run
        m_t = o_t < run
        o_k = ((k_start + o_t) % n_k).to(tl.int64)  # the cyclic wrap
        b_k = tl.load(
            p_k + o_k[:, None] * stride_kl + o_d[None, :] * stride_kd, mask=m_t[:, None], other=0.0
        )  # [BLOCK_KV, HEAD_DIM]
        b_v = tl.load(
            p_v + o_k[:, None] * stride_vl + o_d[None, :] * stride_vd, mask=m_t[:, None], other=0.0
        )  # [BLOCK_KV, HEAD_DIM]
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision=INPUT_PRECISION) * qk_scale
        b_s = tl.where(_run_mask(o_t, g, SEG_K, W), b_s, float("-inf"))  # [BLOCK_Q, BLOCK_KV]
        b_m_new = tl.maximum(b_m, tl.max(b_s, 1))
        b_alpha = tl.exp2(b_m - b_m_new)
        b_p = tl.exp2(b_s - b_m_new[:, None])
        b_l = b_l * b_alpha + tl.sum(b_p, 1)
        b_acc = b_acc * b_alpha[:, None] + tl.dot(
            b_p.to(b_v.dtype), b_v, input_precision=INPUT_PRECISION
        )
        b_m = b_m_new

    b_l_safe = tl.where(b_l > 0.0, b_l, 1.0)  # rows past the sequence have no keys
    b_out = b_acc / b_l_safe[:, None]
    p_out += i_b.to(tl.int64) * stride_ob + i_h.to(tl.int64) * stride_oh
    p_out_tile = p_out + o_q.to(tl.int64)[:, None] * stride_ol + o_d[None, :] * stride_od
    tl.store(p_out_tile, b_out.to(p_out.dtype.element_ty), mask=m_q[:, None])
    b_lse = (b_m + tl.log2(b_l_safe)) * 0.6931471805599453  # natural log
    tl.store(p_lse + i_bh.to(tl.int64) * (F * SEG_Q) + o_q, b_lse, mask=m_q)


# ----------------------------------------------------------------------------- launcher
def check_device(t: Tensor) -> None:
    """The kernels run on CUDA tensors, or on CPU tensors under the Triton interpreter."""
    if t.device.type == "cuda":
        return
    if t.device.type == "cpu" and interpreted():
        return
    raise ValueError(
        f"the RS-MMA Triton kernels need CUDA tensors (or CPU tensors with TRITON_INTERPRET=1 set "
        f"before triton is imported), got a tensor on {t.device}"
    )


def check_qkv(q: Tensor, k: Tensor, v: Tensor, segments: int, window: int) -> None:
    """Raise TypeError / ValueError for inputs the kernels cannot run, naming expected and got."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be [B, H, L, D], got shape {tuple(t.shape)}")
        if t.dtype not in DTYPES:
            raise TypeError(f"{name} must be one of {DTYPES}, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    check_device(q)
    b, h, lq, d = q.shape
    if k.shape != v.shape or (k.shape[0], k.shape[1], k.shape[3]) != (b, h, d):
        raise ValueError(
            f"k and v must both be [B={b}, H={h}, Lk, D={d}], got {tuple(k.shape)} and "
            f"{tuple(v.shape)}"
        )
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim must be one of {HEAD_DIMS}, got {d}")
    lk = k.shape[2]
    if segments < 1 or lq % segments or lk % segments or lq == 0 or lk == 0:
        raise ValueError(f"Lq={lq} and Lk={lk} must be positive multiples of segments={segments}")
    if not 1 <= window <= segments:
        raise ValueError(f"window must be in [1, segments={segments}], got {window}")


def shift_args(shift: int | Tensor, batch: int, device: torch.device) -> tuple[int, Tensor | None]:
    """(int shift, int64 shift tensor [B] or None) for the kernels."""
    if isinstance(shift, Tensor):
        if shift.shape != (batch,) or shift.dtype.is_floating_point or shift.dtype == torch.bool:
            raise ValueError(
                f"a shift tensor must be an integer tensor [B={batch}], got {shift.dtype} "
                f"{tuple(shift.shape)}"
            )
        if shift.device != device:
            raise ValueError(f"shift must be on {device}, got {shift.device}")
        return 0, shift.to(torch.int64).contiguous()
    return int(shift), None


def check_out(name: str, t: Tensor | None, shape: tuple, dtype: torch.dtype, device) -> None:
    if t is not None and (tuple(t.shape) != shape or t.dtype != dtype or t.device != device):
        raise ValueError(
            f"{name} must be {dtype} {shape} on {device}, got {t.dtype} {tuple(t.shape)} on "
            f"{t.device}"
        )


def input_precision(dtype: torch.dtype) -> str | None:
    """fp32 inputs get exact fp32 products (not TF32), so fp32 means fp32; 16-bit: the default."""
    return "ieee" if dtype == torch.float32 else None


def rsmma_fwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    segments: int,
    window: int,
    shift: int | Tensor,
    scale: float | None = None,
    *,
    out: Tensor | None = None,
    lse: Tensor | None = None,
    config: TileConfig | None = None,
) -> tuple[Tensor, Tensor]:
    """Launch the RS-MMA forward.

    Args:
        q: [B, H, Lq, D]; k, v: [B, H, Lk, D]; fp16, bf16 or fp32, any strides; D in HEAD_DIMS.
        segments: F; window: W in [1, F]; shift: an int, or an integer tensor [B] on q's device.
        scale: softmax scale, default 1/sqrt(D).
        out, lse: optional outputs to write ([B, H, Lq, D] in q's dtype, [B, H, Lq] fp32).
        config: a TileConfig to override `fwd_config` (benchmarks).

    Returns:
        (out [B, H, Lq, D], lse [B, H, Lq] fp32, natural log).
    """
    check_qkv(q, k, v, segments, window)
    b, h, lq, d = q.shape
    lk = k.shape[2]
    shift_int, shift_t = shift_args(shift, b, q.device)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    check_out("out", out, (b, h, lq, d), q.dtype, q.device)
    check_out("lse", lse, (b, h, lq), torch.float32, q.device)
    if lse is not None and not lse.is_contiguous():
        raise ValueError("lse must be contiguous")
    out = torch.empty(b, h, lq, d, dtype=q.dtype, device=q.device) if out is None else out
    lse = torch.empty(b, h, lq, dtype=torch.float32, device=q.device) if lse is None else lse
    seg_q, seg_k = lq // segments, lk // segments
    fp32 = q.dtype == torch.float32
    cfg = config or fwd_config(seg_q, seg_k, segments, window, d, fp32, device.arch(q))
    segs_per_prog, tiles_per_seg = own_tiling(seg_q, segments, cfg.block_own)
    progs_per_bh = triton.cdiv(segments, segs_per_prog) * tiles_per_seg

    def grid(meta):
        return (b * h * progs_per_bh,)

    with device.on_device(q):
        rsmma_fwd_kernel[grid](
            q,
            k,
            v,
            out,
            lse,
            shift_t if shift_t is not None else lse,  # unused without HAS_SHIFT_TENSOR
            *q.stride(),
            *k.stride(),
            *v.stride(),
            *out.stride(),
            H=h,
            SEG_Q=seg_q,
            SEG_K=seg_k,
            F=segments,
            W=window,
            shift=shift_int,
            segs_per_prog=segs_per_prog,
            tiles_per_seg=tiles_per_seg,
            progs_per_bh=progs_per_bh,
            qk_scale=scale * LOG2E,
            HEAD_DIM=d,
            BLOCK_Q=cfg.block_own,
            BLOCK_KV=cfg.block_loop,
            HAS_SHIFT_TENSOR=shift_t is not None,
            INPUT_PRECISION=input_precision(q.dtype),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )
    return out, lse

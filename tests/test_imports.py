"""Every module of the installed package imports: a wrong module path cannot hide behind a lazy
import inside a function (as `mmfast.data.video_folder` once did in the trainer)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path


def _modules() -> list[str]:
    """Every module of mmfast, kernels included (installed from kernels/ as mmfast.kernels), but
    `mmfast.__main__`, which runs the command."""
    import mmfast.kernels

    names = [m.name for m in pkgutil.walk_packages(mmfast.__path__, "mmfast.")]
    names += [m.name for m in pkgutil.walk_packages(mmfast.kernels.__path__, "mmfast.kernels.")]
    names = sorted(set(names) - {"mmfast.__main__"})
    assert "mmfast.kernels.rsmma_fwd" in names and "mmfast.cli.train" in names, names
    return names


def test_every_module_imports():
    for name in _modules():
        importlib.import_module(name)


def test_every_import_inside_a_function_names_a_real_module():
    """Imports in function bodies run only when the function does: resolve each one now."""
    missing = []
    for name in _modules():
        module = importlib.import_module(name)
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    target = importlib.import_module(node.module)
                    for alias in node.names:
                        if not hasattr(target, alias.name):
                            try:
                                importlib.import_module(f"{node.module}.{alias.name}")
                            except ImportError:
                                missing.append(f"{name}: from {node.module} import {alias.name}")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        importlib.import_module(alias.name)
    assert not missing, missing

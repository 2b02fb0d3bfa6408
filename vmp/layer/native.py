"""Build and load the C++ CPU kernel of the prompt layer (``vmp/layer/csrc/prompt_cpu.cpp``).

The kernel is compiled on first use with ``torch.utils.cpp_extension.load`` (about 25 s on a
2-core machine; needs a C++ compiler) and cached in torch's extension directory
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), so later processes load it
in milliseconds. Concurrent first builds (parallel Snakemake jobs) are serialised by torch's
lock file. The instruction set is chosen from the CPU torch runs on and is part of the
extension's name, so machines with different CPUs sharing one home directory each build their own.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).parent / "csrc" / "prompt_cpu.cpp"


class KernelBuildError(RuntimeError):
    """The C++ kernel could not be compiled or loaded on this machine."""


# Compiler flags per ATen CPU capability; -ffast-math lets gcc call glibc's vector expf.
_ARCH_FLAGS: dict[str, list[str]] = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}


def cpu_capability() -> str:
    """ATen's CPU capability ("AVX512", "AVX2", "DEFAULT", ...) of this machine."""
    return torch.backends.cpu.get_cpu_capability()


@functools.cache
def prompt_kernel() -> ModuleType:
    """The compiled kernel module (``forward``, ``backward``); builds it on the first call.

    Raises:
        KernelBuildError: The build failed (no compiler, missing headers); the message says why.
    """
    capability = cpu_capability()
    flags = ["-O3", "-ffast-math", "-fopenmp", *_ARCH_FLAGS.get(capability, [])]
    # Imported here (it pulls in setuptools); its import logs "No CUDA runtime is found",
    # which is irrelevant for a CPU kernel.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)

    try:
        return cpp_extension.load(
            name=f"vmp_prompt_cpu_{capability.lower()}",
            sources=[str(SOURCE)],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
        )
    except Exception as err:
        raise KernelBuildError(
            f"building the prompt layer's CPU kernel {SOURCE} failed ({type(err).__name__}: "
            f"{str(err).strip()[-500:]}); install a C++ compiler (g++) or use "
            "implementation='fused'"
        ) from err

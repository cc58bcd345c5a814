"""The package's C++ kernels for the CPU (`depthwise_backward.cpp`, `batch_norm.cpp`, `pooling.cpp`, and
`mixed_node.cpp` for the recurrent search cell), compiled on first use.

Each is compiled the first time it is needed on a machine (25-40 s on 2 cores, with torch's extension builder; cached
in `TORCH_EXTENSIONS_DIR`). Where one cannot be built (no C++ compiler), a warning says so once and the layers that
use it run PyTorch's own implementation: the same results, slower.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path


logger = logging.getLogger(__name__)


@functools.cache
def load_kernels(name: str):
    """The compiled module of `<name>.cpp` beside this file (built once per machine), or None where it cannot be
    built."""
    try:
        from torch.utils.cpp_extension import load

        if shutil.which("ninja") is None:  # torch's builder runs `ninja`; the pip package puts it beside Python
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        logger.info("Loading the %s kernel (compiled on first use: 25-40 s on 2 cores).", name)
        return load(
            f"darts_hub_{name}", [str(Path(__file__).with_name(f"{name}.cpp"))], extra_cflags=["-O3", "-fopenmp"]
        )
    except Exception as error:  # a missing compiler, ninja or source file: the slower built-in layers still work
        logger.warning(
            "The %s kernel could not be built (%s: %s); PyTorch's own implementation runs instead: the same "
            "results, slower on the CPU.",
            name,
            type(error).__name__,
            error,
        )
        return None


__all__ = ["load_kernels"]

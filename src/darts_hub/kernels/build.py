"""Building the package's C++ kernels for the CPU (`depthwise_backward.cpp`, `batch_norm.cpp`, `pooling.cpp` and
`mixed_node.cpp`), with torch's extension builder.

Each is compiled once per machine (25-40 s on 2 cores) and cached in `TORCH_EXTENSIONS_DIR`. `build_kernels` compiles
the missing ones up front, behind a progress bar that says why the command waits; `kernelize` calls it before a run's
first step. Where one cannot be built (no C++ compiler), a warning says so once and the layers that would use it run
PyTorch's own implementation: the same results, slower.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path

from tqdm.auto import tqdm


logger = logging.getLogger(__name__)

KERNELS = ("depthwise_backward", "batch_norm", "pooling", "mixed_node")


def _extension_name(name: str) -> str:
    return f"darts_hub_{name}"


def _is_built(name: str) -> bool:
    """Whether the kernel's library is in torch's cache already (then loading it takes a moment)."""
    from torch.utils.cpp_extension import _get_build_directory

    folder = Path(_get_build_directory(_extension_name(name), verbose=False))
    return any(folder.glob(f"{_extension_name(name)}*.so"))


@functools.cache
def load_kernels(name: str):
    """The compiled module of `<name>.cpp` beside this file (built once per machine), or None where it cannot be
    built."""
    try:
        from torch.utils.cpp_extension import load

        if shutil.which("ninja") is None:  # torch's builder runs `ninja`; the pip package puts it beside Python
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        return load(
            _extension_name(name), [str(Path(__file__).with_name(f"{name}.cpp"))], extra_cflags=["-O3", "-fopenmp"]
        )
    except Exception as error:  # a missing compiler, ninja or source file: the slower built-in layers still work
        # One warning per process: where one kernel cannot be built, the others usually cannot either.
        log = logger.info if _failed else logger.warning
        _failed.append(name)
        log(
            "The %s kernel could not be built (%s: %s); PyTorch's own implementation runs instead: the same "
            "results, slower on the CPU (a C++ compiler, such as Debian's g++, builds the kernels).",
            name,
            type(error).__name__,
            error,
        )
        return None


_failed: list[str] = []  # the kernels that could not be built in this process


def build_kernels(names: tuple[str, ...] = KERNELS) -> dict[str, bool]:
    """Compile (the first time on a machine) and load the kernels `names`: a progress bar names each kernel being
    compiled, so that a first run says why it waits. Returns, per kernel, whether it is available."""
    missing = [name for name in names if not _is_built(name)]
    if missing:
        progress = tqdm(missing, desc="Compiling darts-hub's CPU kernels (once per machine, 25-40 s each)")
        for name in progress:
            progress.set_postfix_str(name)
            load_kernels(name)
    return {name: load_kernels(name) is not None for name in names}


__all__ = ["KERNELS", "build_kernels", "load_kernels"]

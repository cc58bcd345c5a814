"""The long-running commands use tcmalloc where the machine has it.

A search step frees and allocates thousands of activations of a few sizes. glibc's allocator leaves them in holes it
cannot reuse: a first-order search step at batch 64 peaks at 5.2 GB of resident memory where 2.6 GB is in use at any
time; under tcmalloc (gperftools; Debian and Ubuntu package it as `libtcmalloc-minimal4`) the same step peaks at
3.3 GB, at the same speed (docs/results.md). PyTorch's own CPU launcher (`python -m torch.backends.xeon.run_cpu`)
preloads tcmalloc by default for the same reason. A process chooses its allocator only when it starts, so `darts-search`,
`darts-search-rnn`, `darts-train`, `darts-select`, `darts-evaluate` and `darts-benchmark` (and the scripts that run
them) start again under tcmalloc, with the same command line and the same process id, when the machine has it and it
is not loaded yet. The allocator changes no result: only where the memory comes from.

`DARTS_HUB_ALLOCATOR=system` keeps the system's allocator.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


logger = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "DARTS_HUB_ALLOCATOR"
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so")


def library_folders() -> list[Path]:
    """Where tcmalloc is looked for: the environment's own lib folder (conda installs it there), then the system's."""
    machine = os.uname().machine
    return [
        Path(sys.prefix) / "lib",
        Path(f"/usr/lib/{machine}-linux-gnu"),
        Path("/usr/lib64"),
        Path("/usr/lib"),
        Path("/usr/local/lib"),
    ]


def find_tcmalloc() -> Path | None:
    """The path of the first tcmalloc library found, or None."""
    for folder in library_folders():
        for name in TCMALLOC_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def current_allocator() -> str:
    """'tcmalloc' where this process runs under it, else 'system'."""
    maps = Path("/proc/self/maps")
    return "tcmalloc" if maps.is_file() and "libtcmalloc" in maps.read_text() else "system"


def run_under_tcmalloc() -> None:
    """Start this program again with tcmalloc preloaded, where the machine has it (see the module's docstring);
    return without doing anything where it is loaded already, where `DARTS_HUB_ALLOCATOR=system` asks for the
    system's allocator, or off Linux. Where tcmalloc is missing, say once how to get it and go on."""
    choice = os.environ.get(ENVIRONMENT_VARIABLE, "tcmalloc")
    if choice not in ("tcmalloc", "system"):
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={choice!r}: use 'tcmalloc' (the default) or 'system'.")
    preloaded = os.environ.get("LD_PRELOAD", "")
    if choice == "system" or sys.platform != "linux" or "tcmalloc" in preloaded or not sys.executable:
        return
    library = find_tcmalloc()
    if library is None:
        logger.warning(
            "tcmalloc was not found (%s in %s): running with the system's allocator, whose peak memory in a search "
            "is up to 1.6x tcmalloc's. Install it (Debian/Ubuntu: apt-get install libtcmalloc-minimal4) or set "
            "%s=system to silence this.",
            " / ".join(TCMALLOC_NAMES[:2]),
            ", ".join(map(str, library_folders())),
            ENVIRONMENT_VARIABLE,
        )
        return
    environment = {**os.environ, "LD_PRELOAD": " ".join(filter(None, [str(library), preloaded]))}
    sys.stdout.flush()  # what was printed before the restart: otherwise lost with the buffers
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, environment)


__all__ = ["current_allocator", "find_tcmalloc", "run_under_tcmalloc"]

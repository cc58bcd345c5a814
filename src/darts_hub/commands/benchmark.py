#!/usr/bin/env python
"""Measure the expensive steps and print one JSON line per workload.

    python scripts/benchmark.py                                   # every workload, each in a fresh process
    python scripts/benchmark.py --workload search_first_order --batch_size 64 --channels_last no
    python scripts/benchmark.py --workload search_second_order --batch_size 16 --device cuda --dtype bfloat16
    python scripts/benchmark.py --workload train_step --device cuda --dtype bfloat16 --compile
    python scripts/benchmark.py --workload search_first_order --partial_channels 4      # PC-DARTS (K = 4)
    python scripts/benchmark.py --workload train_step --batch_size 32                      # DARTS_V2 CIFAR-10 network
    python scripts/benchmark.py --workload inference --batch_size 64
    python scripts/benchmark.py --workload recurrent_search_first_order --batch_size 64        # sizes 300, bptt 35
    python scripts/benchmark.py --workload recurrent_train_step --batch_size 64                # DARTS_V2 PTB, 850
    python scripts/benchmark.py --workload recurrent_train_step --profile ptb_step.txt   # where a step's time goes

Search workloads use the paper's search size (batch 64, 3x32x32 images, 16 channels, 8 cells); train_step and
inference the paper's CIFAR-10 network (DARTS_V2, 36 channels, 20 cells, auxiliary head, drop-path 0.2); the recurrent
workloads the PTB search supernet (sizes 300) and the DARTS_V2 PTB model (850, vocabulary 10,000) on chunks of 35
tokens, reported in tokens/s too. The settings a user does not choose are the scripts' defaults (float32; the
channels-last layout on the CPU), so the figures are what the scripts run at. On the CPU the peak memory is the
process's peak resident set size, which is why "all" runs each workload in its own process. `--profile` writes where
one more step's time goes (operators by their own time; the matrix products' share and rate in GFLOP/s).
"""

import argparse
import json
import os
import subprocess
import sys

from darts_hub.allocator import run_under_tcmalloc
from darts_hub.benchmark import DTYPES, WORKLOADS


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="all", choices=["all", *WORKLOADS], help="what to measure")
    parser.add_argument(
        "--batch_size", type=int, default=None, help="images or text streams per step (default: 64; 32 for train_step)"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the accelerator if there is one)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="autocast dtype (default: float32)")
    parser.add_argument(
        "--channels_last",
        choices=["auto", "yes", "no"],
        default="auto",
        help="channels-last memory format; auto (the default, as the scripts): on the CPU only",
    )
    parser.add_argument(
        "--activation_checkpointing",
        action="store_true",
        help="search workloads: recompute each cell in the backward pass (less memory, more time)",
    )
    parser.add_argument(
        "--partial_channels",
        type=int,
        default=1,
        help="search workloads: PC-DARTS's K, the mixed operations on 1/K of the channels (default: 1, DARTS)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps; the median is reported (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the prepared model with inductor, one repeated block at a time (Accelerate's regional "
        "compilation); the reported times exclude the warm-up steps, which compile",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="one more step under torch.profiler, its operators and matrix products written to this new file",
    )
    args = parser.parse_args()
    if args.profile is not None and args.workload == "all":
        parser.error("--profile profiles one workload: give --workload too.")
    if args.profile is not None and os.path.lexists(args.profile):
        parser.error(f"--profile {args.profile} exists; give a new file (the benchmark does not overwrite files).")
    run_under_tcmalloc()
    # What the workloads take as given (the workload and the search-only flag are handled here).
    options = {
        key: value
        for key, value in vars(args).items()
        if key not in ("workload", "activation_checkpointing", "partial_channels") and value is not None
    }
    if args.workload == "all":
        # Each setting again, an on/off one (--compile) as the bare flag where on.
        flags = [
            f"--{key}" if value is True else f"--{key}={value}" for key, value in options.items() if value is not False
        ]
        search_flags = ["--partial_channels", str(args.partial_channels)]
        if args.activation_checkpointing:
            search_flags.append("--activation_checkpointing")
        for workload in WORKLOADS:
            subprocess.run(
                [sys.executable, "-m", "darts_hub.commands.benchmark", "--workload", workload, *flags]
                + (search_flags if workload.startswith("search_") else []),
                check=True,
            )
        return
    settings = {**options, "channels_last": {"auto": None, "yes": True, "no": False}[args.channels_last]}
    for flag, given in (
        ("activation_checkpointing", args.activation_checkpointing),
        ("partial_channels", args.partial_channels != 1),
    ):
        if given:
            if not args.workload.startswith("search_"):
                parser.error(f"--{flag} applies to the search workloads (search_first_order, ...) only.")
            settings[flag] = getattr(args, flag)
    print(json.dumps(WORKLOADS[args.workload](**settings)), flush=True)


if __name__ == "__main__":
    main()

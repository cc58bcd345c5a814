"""Run by tests: a search that SIGKILLs itself (kill -9, no clean-up of any kind) at a chosen point of a save:
`checkpoint` (the rename of checkpoints/checkpoint-6.partial, written but not yet complete) or `final` (after the
third final file was moved into the output folder), then the search's arguments."""

import os
import signal
import sys

from transformers import HfArgumentParser

import darts_hub.hub
import darts_hub.training.checkpoints
from darts_hub.training.arguments import SearchArguments
from darts_hub.training.search_images import run_search


def kill_at(module, should_kill):
    replace = module.os.replace
    calls = []

    class KillingOs:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(source, target):
            calls.append(str(source))
            if should_kill(str(source), len(calls)):
                os.kill(os.getpid(), signal.SIGKILL)
            replace(source, target)

    module.os = KillingOs()


if __name__ == "__main__":
    where = sys.argv[1]
    if where == "checkpoint":
        kill_at(darts_hub.training.checkpoints, lambda source, count: source.endswith("checkpoint-6.partial"))
    else:
        kill_at(darts_hub.hub, lambda source, count: count == 3)
    (args,) = HfArgumentParser(SearchArguments).parse_args_into_dataclasses(sys.argv[2:])
    run_search(args)

"""Run by tests under `accelerate launch`: a short search (`cnn` or `rnn`, then the search's arguments), after
which every rank saves its alphas for comparison."""

import os
import sys
from pathlib import Path

import torch
from transformers import HfArgumentParser

from darts_hub.training.arguments import RecurrentSearchArguments, SearchArguments
from darts_hub.training.search_images import run_search
from darts_hub.training.search_text import run_recurrent_search


SEARCHES = {"cnn": (SearchArguments, run_search), "rnn": (RecurrentSearchArguments, run_recurrent_search)}


if __name__ == "__main__":
    arguments, search = SEARCHES[sys.argv[1]]
    (args,) = HfArgumentParser(arguments).parse_args_into_dataclasses(sys.argv[2:])
    supernet = search(args)
    # The process group is gone after the run; the launcher's variables say who we were.
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    torch.save(
        {"world_size": world, "alphas": [a.detach().clone() for a in supernet.arch_parameters()]},
        Path(args.output_dir) / f"alphas-rank{rank}.pt",
    )

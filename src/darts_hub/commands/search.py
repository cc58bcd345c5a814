#!/usr/bin/env python
"""DARTS architecture search (convolutional cells) on one CPU, one GPU or several, with Accelerate.

    accelerate launch scripts/search.py --output_dir darts-search                 # embedded digits, paper settings
    accelerate launch scripts/search.py --dataset_name uoft-cs/cifar10 --order 2 --push_to_hub --hub_model_id me/cell

Writes the result folder (config.json of the derived network, genotype.json, alphas history, supernet/, drawings,
animation, model card). Every flag is listed by --help.
"""

from transformers import HfArgumentParser

from darts_hub.allocator import run_under_tcmalloc
from darts_hub.training.arguments import SearchArguments
from darts_hub.training.search_images import run_search


def main():
    (args,) = HfArgumentParser(SearchArguments, description=__doc__).parse_args_into_dataclasses()
    run_under_tcmalloc()
    run_search(args)


if __name__ == "__main__":
    main()

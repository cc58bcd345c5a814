#!/usr/bin/env python
"""The paper's selection of a cell (Sec. 3.2): several searches with different seeds, each found cell trained briefly
from scratch, the best kept.

    accelerate launch scripts/selection.py --dataset_name uoft-cs/cifar10 --output_dir cifar10-selection   # 4 x (search + 100 epochs)
    accelerate launch scripts/selection.py --recurrent --train_file ptb.train.txt --validation_file ptb.valid.txt \\
        --test_file ptb.test.txt --output_dir ptb-selection                                              # 4 x (search + 300 epochs)
    accelerate launch scripts/selection.py --output_dir ... --resume_from_checkpoint latest                  # continue a killed one

The search flags are the search script's (`--recurrent`: search_rnn.py's); the selection's are --num_searches,
--selection_epochs, --selection_batch_size and --selection_eval_split. Writes the selected search's result folder
with the selection table (selection.json, and in the model card); every search and training stays in runs/.
--push_to_hub uploads the result folder (not runs/). Every flag is listed by --help (`--recurrent --help`).
"""

import argparse

from transformers import HfArgumentParser

from darts_hub.allocator import run_under_tcmalloc
from darts_hub.training.arguments import RecurrentSearchArguments, SearchArguments, SelectionArguments
from darts_hub.training.protocol import run_selection


def main():
    task_parser = argparse.ArgumentParser(add_help=False)
    task_parser.add_argument("--recurrent", action="store_true")
    recurrent = task_parser.parse_known_args()[0].recurrent
    search_arguments = RecurrentSearchArguments if recurrent else SearchArguments
    parser = HfArgumentParser((search_arguments, SelectionArguments), description=__doc__)
    parser.add_argument("--recurrent", action="store_true", help="Search recurrent cells (language modelling).")
    search_args, selection, _ = parser.parse_args_into_dataclasses()
    run_under_tcmalloc()
    run_selection(search_args, selection)


if __name__ == "__main__":
    main()

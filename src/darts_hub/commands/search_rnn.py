#!/usr/bin/env python
"""DARTS architecture search of a recurrent cell for word-level language modelling (the paper's PTB search).

    python scripts/search_rnn.py --output_dir rnn-search                        # embedded pydoc corpus
    python scripts/search_rnn.py --train_file ptb.train.txt --validation_file ptb.valid.txt --test_file ptb.test.txt
    python scripts/search_rnn.py --dataset_name Salesforce/wikitext --dataset_config_name wikitext-2-v1 --order 2

Writes the result folder (config.json of the derived DartsRNNConfig, genotype.json, alphas history, supernet/, the
word tokenizer, drawings, animation, model card). Every flag is listed by --help; defaults are the paper's.
"""

from transformers import HfArgumentParser

from darts_hub.allocator import run_under_tcmalloc
from darts_hub.training.arguments import RecurrentSearchArguments
from darts_hub.training.search_text import run_recurrent_search


def main():
    (args,) = HfArgumentParser(RecurrentSearchArguments, description=__doc__).parse_args_into_dataclasses()
    run_under_tcmalloc()
    run_recurrent_search(args)


if __name__ == "__main__":
    main()

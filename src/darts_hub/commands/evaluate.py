#!/usr/bin/env python
"""Evaluate a DARTS model: an image classifier (top-1/top-5 accuracy and error, loss, images, parameters, mult-adds)
or a language model (perplexity over the whole split in order, as the original: batch 1, bptt 35).

    python scripts/evaluate.py --model_name_or_path darts-trained                       # embedded digits, test split
    python scripts/evaluate.py --model_name_or_path you/darts-v2-cifar10 --dataset_name uoft-cs/cifar10
    python scripts/evaluate.py --model_name_or_path darts-v2-imagenet --dataset_name ILSVRC/imagenet-1k --split validation
    python scripts/evaluate.py --model_name_or_path darts-v2-ptb --train_file ptb.train.txt \
        --validation_file ptb.valid.txt --test_file ptb.test.txt                       # perplexity

Prints the results as JSON and writes them to --output_file (default: eval_results_SPLIT.json in the model folder).
"""

import json

from transformers import HfArgumentParser

from darts_hub.allocator import run_under_tcmalloc
from darts_hub.training.arguments import EvaluateArguments
from darts_hub.training.evaluate_checkpoint import evaluate_checkpoint


def main():
    (args,) = HfArgumentParser(EvaluateArguments, description=__doc__).parse_args_into_dataclasses()
    run_under_tcmalloc()
    print(json.dumps(evaluate_checkpoint(args)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Train a DARTS network from scratch with the paper's recipe (Accelerate: one CPU, one GPU or several).

    accelerate launch scripts/train.py --config_name darts-search --dataset_name uoft-cs/cifar10   # a search result
    accelerate launch scripts/train.py --genotype DARTS_V2 --dataset_name uoft-cs/cifar10          # a zoo cell
    accelerate launch scripts/train.py --genotype DARTS_V2 --recipe imagenet --dataset_name ILSVRC/imagenet-1k \\
        --eval_split validation --stream_images                      # decoded while read: ImageNet exceeds memory
    accelerate launch scripts/train.py --recipe ptb --genotype DARTS_V2 \\
        --dataset_name ptb_text_only --dataset_revision refs/convert/parquet                       # a language model
    accelerate launch scripts/train.py --recipe wikitext2 --config_name darts-rnn-search \\
        --dataset_name Salesforce/wikitext --dataset_config_name wikitext-2-v1

Image classifiers (recipes cifar, imagenet): the model (safetensors, config, image processor), training_log.json,
all_results.json, cell drawings and a model card in --output_dir. Language models (recipes ptb, wikitext2): the model
with the best validation loss and its tokenizer (saved whenever validation improves), training_log.json,
all_results.json (validation and test perplexity), the cell drawing and a model card. --push_to_hub uploads them.
--num_runs N trains N times (seeds --seed, --seed + 1, ...; each in runs/seed-S/) and reports the test error or
perplexity as mean +/- std in all_results.json and the model card; the best run is the folder's model.
Every flag is listed by --help (`--recipe ptb --help` for language models).
"""

import argparse

from transformers import HfArgumentParser

from darts_hub.allocator import run_under_tcmalloc
from darts_hub.recipes import LANGUAGE_MODEL_TRAINING
from darts_hub.training.arguments import LanguageModelTrainArguments, TrainArguments, fill_recipe
from darts_hub.training.protocol import run_repeated_training
from darts_hub.training.train_images import run_training
from darts_hub.training.train_text import run_language_model_training


def main():
    recipe_parser = argparse.ArgumentParser(add_help=False)
    recipe_parser.add_argument("--recipe")
    if recipe_parser.parse_known_args()[0].recipe in LANGUAGE_MODEL_TRAINING:
        arguments, run = LanguageModelTrainArguments, run_language_model_training
    else:
        arguments, run = TrainArguments, run_training
    (args,) = HfArgumentParser(arguments, description=__doc__).parse_args_into_dataclasses()
    args = fill_recipe(args)
    run_under_tcmalloc()
    if args.num_runs > 1:
        run_repeated_training(args, run)
    else:
        run(args)


if __name__ == "__main__":
    main()

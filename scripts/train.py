#!/usr/bin/env python
"""Train a DARTS network from scratch with the paper's recipe (Accelerate: one CPU, one GPU or several).

    accelerate launch scripts/train.py --config_name darts-search --dataset_name uoft-cs/cifar10   # a search result
    accelerate launch scripts/train.py --genotype DARTS_V2 --dataset_name uoft-cs/cifar10          # a zoo cell
    accelerate launch scripts/train.py --genotype DARTS_V2 --recipe imagenet --dataset_name ILSVRC/imagenet-1k \\
        --eval_split validation

Writes the model (safetensors, config, image processor), training_log.json, all_results.json, cell drawings and a
model card to --output_dir; --push_to_hub uploads them. Every flag is listed by --help.
"""

from transformers import HfArgumentParser

from darts_hub.training.train_loop import TrainArguments, run_training


def main():
    (args,) = HfArgumentParser(TrainArguments, description=__doc__).parse_args_into_dataclasses()
    run_training(args)


if __name__ == "__main__":
    main()

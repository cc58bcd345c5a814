#!/usr/bin/env python
"""Print the parameters and mult-adds of a DARTS network, counted as the original code and the paper count them.

python scripts/count.py                                  # DARTS_V2, CIFAR-10 sizes
python scripts/count.py --stem imagenet --init_channels 48 --num_cells 14 --num_labels 1000
python scripts/count.py --model_name_or_path path/to/saved_model
"""

import argparse
import json

from darts_hub.counting import summarize


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", help="a saved model or search-result folder (or Hub id)")
    parser.add_argument("--genotype", default="DARTS_V2", help="zoo name or genotype JSON file (default: DARTS_V2)")
    parser.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"], help="network stem (default: cifar)")
    parser.add_argument("--init_channels", type=int, default=36, help="channels of the first cells (default: 36)")
    parser.add_argument("--num_cells", type=int, default=20, help="number of cells (default: 20)")
    parser.add_argument("--num_labels", type=int, default=10, help="number of classes (default: 10)")
    parser.add_argument("--image_size", type=int, help="input side in pixels (default: 32 cifar, 224 imagenet)")
    args = parser.parse_args()
    print(json.dumps(summarize(**vars(args))))


if __name__ == "__main__":
    main()

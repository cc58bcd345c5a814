#!/usr/bin/env python
"""Draw the cells of a genotype (a zoo name, a JSON file, or a search-result / saved-model folder) with graphviz.

python scripts/visualize.py DARTS_V2 --output_dir cells --format pdf
python scripts/visualize.py DARTS_V2 --recurrent --output_dir cells
python scripts/visualize.py path/to/search_output
python scripts/visualize.py "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"
"""

import argparse

from darts_hub.models.genotypes import load_genotype
from darts_hub.visualize import FORMATS, draw_genotype


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "genotype", help="zoo name (DARTS_V2, NASNet, ...), NAS-Bench-201 string, genotype JSON file, or model folder"
    )
    parser.add_argument("--output_dir", default=".", help="where to write the drawings (default: current folder)")
    parser.add_argument("--format", default="png", choices=FORMATS, help="drawing format (default: png)")
    parser.add_argument("--prefix", default="", help="prefix of the file names, e.g. 'darts_v2_'")
    parser.add_argument(
        "--recurrent", action="store_true", help="look a zoo name up among the recurrent genotypes (ENAS, DARTS_V2...)"
    )
    args = parser.parse_args()
    genotype = load_genotype(args.genotype, recurrent=args.recurrent or None)
    for path in draw_genotype(genotype, args.output_dir, args.format, args.prefix):
        print(path)


if __name__ == "__main__":
    main()

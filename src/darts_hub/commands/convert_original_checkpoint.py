#!/usr/bin/env python
"""Convert an original DARTS checkpoint into a transformers folder (safetensors, config with the genotype, image
processor or tokenizer, model card), ready for `upload_folder`. The original pickles are never executed: a file that
asks for anything but tensors and the original classes is refused, and nothing is written or created.

    python scripts/convert_original_checkpoint.py --checkpoint cifar10_model.pt --kind cifar10 --output_dir darts-v2-cifar10
    python scripts/convert_original_checkpoint.py --checkpoint imagenet_model.pt --kind imagenet --output_dir darts-v2-imagenet
    python scripts/convert_original_checkpoint.py --checkpoint ptb_model.pt --kind ptb --vocab_from data/penn \\
        --output_dir darts-v2-ptb --push_to_hub --hub_model_id you/darts-v2-ptb
"""

import argparse
import pickle

from darts_hub.convert import KINDS, ConversionError, convert_checkpoint
from darts_hub.hub import HubPushError, create_hub_repo, push_folder


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="cifar10_model.pt, imagenet_model.pt or ptb_model.pt")
    parser.add_argument("--kind", required=True, choices=KINDS, help="which released checkpoint it is")
    parser.add_argument("--output_dir", required=True, help="the folder to write (new or empty)")
    parser.add_argument(
        "--overwrite_output_dir", action="store_true", help="write into a non-empty --output_dir, replacing its files"
    )
    parser.add_argument("--genotype", default=None, help="the cells (default: DARTS_V2; PTB: read from the file)")
    parser.add_argument(
        "--vocab_from", default=None, help="PTB: folder with train.txt, valid.txt, test.txt (or a text dataset name)"
    )
    parser.add_argument(
        "--export",
        default=None,
        choices=["onnx"],
        help="also write model.onnx (checked by onnxruntime; the card lists it)",
    )
    parser.add_argument("--push_to_hub", action="store_true", help="upload the folder to the Hub")
    parser.add_argument("--hub_model_id", default=None, help="the Hub repository (user/name)")
    parser.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in one)")
    args = parser.parse_args()
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    try:
        folder, files = convert_checkpoint(
            args.checkpoint,
            args.kind,
            args.output_dir,
            args.genotype,
            args.vocab_from,
            args.overwrite_output_dir,
            args.export,
        )
    except (ConversionError, pickle.UnpicklingError, FileNotFoundError, FileExistsError, ImportError) as error:
        parser.exit(1, f"error: {error}\n")
    print(folder)
    if args.push_to_hub:
        # The repository is created only now, so that a refused or failed conversion leaves none behind.
        try:
            repo_id = create_hub_repo(args.hub_model_id, token=args.hub_token)
            print(push_folder(folder, repo_id, files, token=args.hub_token))
        except HubPushError as error:
            parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()

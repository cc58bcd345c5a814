#!/usr/bin/env python
"""Export a trained DARTS or NAS-Bench-201 network for deployment, as ONNX (torch's dynamo exporter), checked by
onnxruntime against the PyTorch model (the largest logit difference is printed).

    darts-export --model_name_or_path darts-trained --format onnx               # writes darts-trained/model.onnx
    darts-export --model_name_or_path darts-v2-ptb --format onnx --sequence_length 35 --output_file ptb.onnx

Image classifiers take `pixel_values` of any batch size; a language model's graph takes exactly --sequence_length
tokens (its recurrence is unrolled when exported). Needs `pip install 'darts-hub[onnx]'`.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageClassification, HfArgumentParser

from darts_hub.export import EXPORT_FORMATS, export_onnx, require_export


# model_type -> the Auto class that loads its trained network.
EXPORTABLE = {
    "darts": AutoModelForImageClassification,
    "nas_bench_201": AutoModelForImageClassification,
    "darts_rnn": AutoModelForCausalLM,
}


@dataclass
class ExportArguments:
    model_name_or_path: str = field(metadata={"help": "A folder (or Hub id) of a trained network."})
    format: str = field(default="onnx", metadata={"help": f"The export format: {', '.join(EXPORT_FORMATS)}."})
    output_file: str | None = field(
        default=None, metadata={"help": "Where to write it; default: model.onnx in the model's folder."}
    )
    sequence_length: int = field(
        default=35, metadata={"help": "Language models: the number of tokens the exported graph takes."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output_file."})

    def __post_init__(self):
        require_export(self.format, "--format")  # and its packages, before the model is loaded
        if self.sequence_length < 1:
            raise ValueError(f"--sequence_length must be positive, got {self.sequence_length}.")


def export(args: ExportArguments) -> dict:
    """Load the network, refuse what cannot be exported or would overwrite a file, export and check it."""
    folder = Path(args.model_name_or_path)
    output = Path(args.output_file) if args.output_file else (folder if folder.is_dir() else Path()) / "model.onnx"
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it, or choose another --output_file.")
    config = AutoConfig.from_pretrained(args.model_name_or_path)
    if config.model_type not in EXPORTABLE:
        raise ValueError(
            f"{args.model_name_or_path} holds a {type(config).__name__} ({config.model_type}): darts-export takes "
            f"trained networks ({', '.join(EXPORTABLE)}). For a search result, train its genotype first "
            "(darts-train --config_name SEARCH_FOLDER) and export that."
        )
    model = EXPORTABLE[config.model_type].from_pretrained(args.model_name_or_path)
    return export_onnx(model, output, sequence_length=args.sequence_length)


def main():
    (args,) = HfArgumentParser(ExportArguments, description=__doc__).parse_args_into_dataclasses()
    print(json.dumps(export(args)))


if __name__ == "__main__":
    main()

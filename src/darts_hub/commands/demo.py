#!/usr/bin/env python
"""Write a demo page for a trained image classifier: a Space-ready Gradio app (upload an image, see its top-5 labels,
the cells drawn beside) in the model folder's demo/.

    darts-demo --model_name_or_path my-darts --hub_model_id you/my-darts    # writes my-darts/demo/
    python my-darts/demo/app.py                                             # the page, on http://127.0.0.1:7860
    hf upload --repo-type space you/my-darts-demo my-darts/demo .           # the page as a Space

The app needs `pip install gradio` (`darts-hub[demo]`); writing it does not.
"""

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from darts_hub.demo import write_demo


@dataclass
class DemoArguments:
    model_name_or_path: str = field(
        metadata={"help": "The folder of a trained image classifier (DARTS, NAS-Bench-201)."}
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "The model's Hub repository, which the app loads from as a Space."}
    )
    output_dir: str | None = field(default=None, metadata={"help": "Where to write the demo; default: MODEL/demo."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output_dir."})


def main():
    (args,) = HfArgumentParser(DemoArguments, description=__doc__).parse_args_into_dataclasses()
    folder = write_demo(args.model_name_or_path, args.output_dir, args.hub_model_id, args.overwrite)
    print(f"Wrote the demo to {folder}: run it with `python {folder / 'app.py'}`.")


if __name__ == "__main__":
    main()

"""Load a saved DARTS folder as a user without darts-hub would: torch and transformers only, trust_remote_code=True.

Run in a subprocess by tests/test_remote_code.py: `python load_without_darts_hub.py KIND FOLDER INPUTS OUTPUTS`.
darts_hub cannot be imported here (its entry in sys.modules is None), so everything that runs comes from the code
saved in FOLDER. Reads its inputs from INPUTS and writes what it computed to OUTPUTS (safetensors), plus JSON for text.
"""

import sys


sys.modules["darts_hub"] = None  # `import darts_hub` (or any submodule) raises ImportError from here on

import json  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoTokenizer,
    pipeline,
)


def main(kind: str, folder: str, inputs_file: str, outputs_file: str) -> None:
    try:
        import darts_hub  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("darts_hub is importable: this check would not show anything")
    inputs = load_file(inputs_file)
    outputs, text = {}, {}
    if kind == "image_classifier":
        model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            outputs["logits"] = model(inputs["pixel_values"]).logits
        classifier = pipeline("image-classification", model=folder, trust_remote_code=True)
        image = inputs["image"].permute(1, 2, 0).numpy()
        from PIL import Image

        text["pipeline"] = classifier(Image.fromarray(image), top_k=3)
    elif kind == "search_result":
        supernet = AutoModelForImageClassification.from_pretrained(
            folder, subfolder="supernet", trust_remote_code=True
        ).eval()
        with torch.no_grad():
            outputs["supernet_logits"] = supernet(inputs["pixel_values"]).logits
        text["genotype"] = supernet.genotype().to_dict()
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        torch.manual_seed(0)
        network = AutoModelForImageClassification.from_config(config, trust_remote_code=True).eval()
        with torch.no_grad():
            outputs["network_logits"] = network(inputs["pixel_values"]).logits
        text["network_genotype"] = config.genotype
    elif kind == "language_model":
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            outputs["logits"] = model(inputs["input_ids"]).logits
        prompt = tokenizer("the model", return_tensors="pt")
        outputs["generated"] = model.generate(**prompt, max_new_tokens=5, do_sample=False)
        generator = pipeline("text-generation", model=folder, trust_remote_code=True)
        text["pipeline"] = generator("the model", max_new_tokens=5, do_sample=False)
    else:
        raise SystemExit(f"unknown kind {kind}")
    save_file({name: tensor.contiguous() for name, tensor in outputs.items()}, outputs_file)
    with open(outputs_file + ".json", "w") as file:
        json.dump(text, file)


if __name__ == "__main__":
    main(*sys.argv[1:])

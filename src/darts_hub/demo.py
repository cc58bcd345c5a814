"""A demo page for a trained image classifier: a Space-ready Gradio app written into the model's `demo/` folder.

The folder holds `app.py` (upload an image, see its top-5 labels, the cells drawn beside), `demo.json` (what the app
shows, and the Hub id of the model it loads as a Space), the cell drawings, `requirements.txt` and a `README.md`
whose YAML makes the folder a Gradio Space (`sdk: gradio`). It runs where it is (`python demo/app.py` loads the
model folder around it), or uploaded as a Space (it loads the model from the Hub, with its code: no darts-hub
needed there).

The folder is written beside its final name and moved there complete: a refused or failed demo writes nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData
from transformers import AutoConfig

from .models.genotypes import CNN_GENOTYPES
from .visualize import drawable_cell_pictures


DEMO_FOLDER = "demo"
# The model types the demo page shows: the trained image classifiers.
DEMO_MODELS = ("darts", "nas_bench_201")
# What the Space installs: the model's code needs torch and transformers (torchvision for its image processor).
REQUIREMENTS = ("torch", "torchvision", "transformers>=5.24", "gradio", "pillow")
APP = Path(__file__).with_name("demo_app.py")


def check_demo_model(config, name: str) -> None:
    """Refuse a model the demo page cannot show (it classifies images), saying what to use instead."""
    if config.model_type in DEMO_MODELS:
        return
    if config.model_type == "darts_rnn":
        raise ValueError(
            f"{name} is a language model (DartsRNNConfig): the demo page classifies images. Generate text with "
            f'transformers\' pipeline("text-generation", model="{name}", trust_remote_code=True) instead.'
        )
    if config.model_type in ("darts_search", "darts_rnn_search"):
        raise ValueError(
            f"{name} is a search supernet ({type(config).__name__}): train its genotype first (darts-train "
            "--config_name SEARCH_FOLDER) and write the demo of the trained network."
        )
    raise ValueError(
        f"{name} holds a {type(config).__name__} ({config.model_type}); the demo page shows trained image "
        f"classifiers: {', '.join(DEMO_MODELS)}."
    )


def demo_settings(config, name: str, model_id: str | None, cells: dict[str, str]) -> dict:
    """What `app.py` shows: its title, a line about the network, the drawings of its cells, the model's Hub id (the
    Space's id is derived from it: `you/my-darts` -> `you/my-darts-demo`)."""
    labels = [config.id2label[index] for index in sorted(config.id2label)]
    shown = ", ".join(labels[:10]) + (f", ... ({len(labels)} in all)" if len(labels) > 10 else "")
    if config.model_type == "darts":
        genotype = config.get_genotype()
        zoo = next((name for name, known in CNN_GENOTYPES.items() if known == genotype), None)
        cell = f"the {zoo} cells" if zoo else "searched cells"
        network = f"A DARTS network ({cell}, {config.init_channels} channels, {config.num_cells} cells)"
    else:
        network = f"A NAS-Bench-201 network (cell `{config.get_genotype()}`)"
    return {
        "title": f"{name} demo",
        "description": f"{network} that classifies images into: {shown}. Upload an image to see its top-5 labels.",
        "cells": cells,
        "model_id": model_id,
        "space_id": f"{model_id or 'you/' + name}-demo",
    }


def space_card(settings: dict) -> SpaceCard:
    """The README.md that makes the folder a Gradio Space."""
    try:
        sdk_version = importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:  # the Space then takes the current Gradio
        sdk_version = None
    data = SpaceCardData(
        title=settings["title"],
        sdk="gradio",
        sdk_version=sdk_version,
        app_file="app.py",
        models=[settings["model_id"]] if settings["model_id"] else None,
        license="apache-2.0",
    )
    text = (
        f"---\n{data.to_yaml()}\n---\n\n# {settings['title']}\n\n{settings['description']}\n\n"
        "Run it here: `pip install -r requirements.txt && python app.py` (then open http://127.0.0.1:7860).\n\n"
        f"Publish it as a Space: `hf upload --repo-type space {settings['space_id']} .` from this folder."
    )
    if settings["model_id"] is None:
        text += " As a Space it needs the model's Hub id: write the demo with `darts-demo --hub_model_id ID`."
    return SpaceCard(text + "\n")


def write_demo(
    model_folder: str | Path,
    output_dir: str | Path | None = None,
    model_id: str | None = None,
    overwrite: bool = False,
    name: str | None = None,
) -> Path:
    """Write the demo of the trained image classifier in `model_folder` into `output_dir` (default: its `demo/`).

    `model_id`: the model's Hub repository, which the app loads from when it runs as a Space. `name`: what the page
    calls the model (default: `model_id`, else the folder's name). An existing `output_dir` is refused unless
    `overwrite`. Returns the folder.
    """
    folder = Path(model_folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a model folder (no config.json): give the folder of a trained model."
        )
    output = Path(output_dir) if output_dir is not None else folder / DEMO_FOLDER
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it, or choose another --output_dir.")
    config = AutoConfig.from_pretrained(folder)
    name = name or model_id or folder.resolve().name
    check_demo_model(config, name)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's folder is private; the demo is not
        cells = {}
        for cell, picture in drawable_cell_pictures(config.get_genotype(), "the demo page").items():
            cells[cell] = f"{cell}.png"
            picture.save(staging / cells[cell])
        settings = demo_settings(config, name, model_id, cells)
        shutil.copyfile(APP, staging / "app.py")
        (staging / "demo.json").write_text(json.dumps(settings, indent=2) + "\n")
        (staging / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
        space_card(settings).save(staging / "README.md")
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


__all__ = ["DEMO_FOLDER", "DEMO_MODELS", "check_demo_model", "write_demo"]

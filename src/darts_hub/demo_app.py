"""A demo page of a DARTS image classifier, written by darts-hub (`darts-demo`): upload an image, see its top-5
labels, with the network's cells drawn beside.

Beside its model (the `demo/` folder of a model folder) it loads the model from that folder; as a Hugging Face Space
(this folder uploaded as the Space's repository) it loads the model from the Hub by the id in `demo.json`. The model's
code comes with it (`trust_remote_code`): the Space needs torch, transformers and gradio, not darts-hub.

    python app.py                       # http://127.0.0.1:7860 (GRADIO_SERVER_PORT changes the port)
"""

import json
from pathlib import Path

import gradio as gr
from transformers import pipeline


HERE = Path(__file__).resolve().parent
SETTINGS = json.loads((HERE / "demo.json").read_text())
MODEL = str(HERE.parent) if (HERE.parent / "config.json").is_file() else SETTINGS["model_id"]
if MODEL is None:
    raise SystemExit(
        f"No model beside {HERE} and no Hub id in demo.json: write the demo with darts-demo --hub_model_id ID."
    )

classifier = pipeline("image-classification", model=MODEL, trust_remote_code=True)


def classify(image):
    """The top-5 labels of `image` with their probabilities."""
    return {prediction["label"]: prediction["score"] for prediction in classifier(image, top_k=5)}


with gr.Blocks(title=SETTINGS["title"]) as demo:
    gr.Markdown(f"# {SETTINGS['title']}\n\n{SETTINGS['description']}")
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="pil", label="image", elem_id="image")
            button = gr.Button("Classify", variant="primary", elem_id="classify")
            labels = gr.Label(num_top_classes=5, label="top-5 labels", elem_id="labels")
        with gr.Column():
            for name, drawing in SETTINGS["cells"].items():
                gr.Image(str(HERE / drawing), label=f"{name} cell", interactive=False)
    button.click(classify, inputs=image, outputs=labels)

if __name__ == "__main__":
    demo.launch()

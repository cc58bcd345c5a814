"""Export a trained network for deployment: ONNX, by torch's dynamo exporter (`torch.onnx.export(dynamo=True)`),
and checked by running the exported file in onnxruntime against the PyTorch model on the same inputs.

- Image classifiers (DARTS networks with the CIFAR or ImageNet stem, NAS-Bench-201 networks): `pixel_values`
  (batch x channels x height x width, any batch size) -> `logits`, in evaluation mode (the auxiliary head, a
  training-only branch, is not in the graph).
- Language models (DARTS recurrent cells): `input_ids` (batch x `sequence_length`) -> `logits`, from the zero
  hidden state. The recurrence is unrolled over the time steps when exported, so the graph takes exactly
  `sequence_length` tokens (any batch size).

The file is written beside its final name and moved there only once onnxruntime has reproduced the logits: a failed
export or check leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .models import DartsForImageClassification, DartsRNNForCausalLM, NasBench201ForImageClassification


logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx",)
# The largest difference between onnxruntime's logits and PyTorch's that a float32 export may show.
ONNX_TOLERANCE = 1e-4
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
IMAGE_CLASSIFIERS = (DartsForImageClassification, NasBench201ForImageClassification)


class _Logits(nn.Module):
    """The model's logits alone: the exported graph's one output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs).logits


def require_export(format: str, flag: str = "--export") -> None:
    """Refuse an unknown export format (given as `flag`), or one whose packages this machine lacks, before any work
    is done."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"{flag} must be one of {list(EXPORT_FORMATS)}, got {format!r}.")
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"The ONNX export needs {', '.join(missing)}: pip install 'darts-hub[onnx]' (or pip install "
            f"{' '.join(ONNX_PACKAGES)})."
        )


def check_exportable(model: nn.Module) -> None:
    """Refuse, before anything is written, what cannot be exported: other models, or a machine without the ONNX
    packages."""
    if not isinstance(model, (*IMAGE_CLASSIFIERS, DartsRNNForCausalLM)):
        raise ValueError(
            f"Cannot export a {type(model).__name__}: darts-export takes trained networks (DARTS or NAS-Bench-201 "
            "image classifiers, DARTS language models). For a search result, export the network trained from its "
            "genotype (darts-train --config_name SEARCH_FOLDER)."
        )
    require_export("onnx")


def example_inputs(model: nn.Module, batch_size: int = 2, sequence_length: int = 35) -> torch.Tensor:
    """Inputs of the shape the model takes, seeded: images of the config's size, or token ids."""
    generator = torch.Generator().manual_seed(0)
    config = model.config
    if isinstance(model, DartsRNNForCausalLM):
        return torch.randint(0, config.vocab_size, (batch_size, sequence_length), generator=generator)
    size = config.image_size
    return torch.randn(batch_size, config.num_channels, size, size, generator=generator)


def export_onnx(model: nn.Module, path: str | Path, sequence_length: int = 35) -> dict:
    """Export `model` (in evaluation mode) to the ONNX file `path` and check it with onnxruntime on a batch other
    than the one exported with. Returns what was checked: the file, its size, the inputs' shape and the largest
    difference of the logits."""
    check_exportable(model)
    import onnxruntime

    path = Path(path)
    model = model.eval()
    language_model = isinstance(model, DartsRNNForCausalLM)
    input_name = "input_ids" if language_model else "pixel_values"
    dynamic = {0: torch.export.Dim("batch_size")}
    with torch.no_grad():
        program = torch.onnx.export(
            _Logits(model).eval(),
            (example_inputs(model, 2, sequence_length),),
            dynamo=True,
            input_names=[input_name],
            output_names=["logits"],
            dynamic_shapes={"inputs": dynamic},
            verbose=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        program.save(staging)
        inputs = example_inputs(model, 3, sequence_length)  # another batch size than the exported example's
        session = onnxruntime.InferenceSession(staging, providers=["CPUExecutionProvider"])
        (exported,) = session.run(["logits"], {input_name: inputs.numpy()})
        with torch.no_grad():
            expected = model(inputs).logits
        difference = (torch.from_numpy(exported) - expected).abs().max().item()
        if not difference <= ONNX_TOLERANCE:
            raise RuntimeError(
                f"onnxruntime's logits differ from PyTorch's by up to {difference:.3g} (> {ONNX_TOLERANCE}); the "
                "export was not written."
            )
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)
    logger.info("Exported %s (logits within %.2g of PyTorch's in onnxruntime)", path, difference)
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "input": input_name,
        "checked_shape": list(inputs.shape),
        "max_abs_difference": difference,
    }


__all__ = ["EXPORT_FORMATS", "ONNX_TOLERANCE", "check_exportable", "example_inputs", "export_onnx", "require_export"]

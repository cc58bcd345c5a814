"""Speed and memory of the expensive steps, measured on the real code paths (used by `scripts/benchmark.py`).

Each workload reports seconds per step, steps/s, images/s and peak memory: CUDA's peak allocation on a GPU, the peak
resident set size of the process on the CPU (so run one workload per process for a clean figure). Each workload
imports the training code its step needs when it runs, so that the peak counts what a user of that step loads:
inference loads the model code, not the training stack (`datasets`, matplotlib: 0.11 GB).
"""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DynamoBackend, TorchDynamoPlugin

from .allocator import current_allocator
from .kernels import kernelize
from .models import DartsConfig, DartsForImageClassification, DartsRNNConfig, DartsRNNForCausalLM
from .models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from .models.modeling_darts_search import DartsSearchConfig, DartsSearchModel
from .recipes import CIFAR10_SEARCH, LANGUAGE_MODEL_TRAINING, LANGUAGE_MODEL_TRAINING_COMMON, PTB_SEARCH
from .search.architect import Architect
from .search.step import SearchStep, search_optimizers
from .training.layout import use_channels_last


DTYPES = {"float32": "no", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class Measurement:
    """How a workload is measured: on `device` ("cpu" keeps it on the CPU; default: the accelerator if there is one),
    under autocast to `dtype`, in the channels-last layout or not (default: as the scripts, on the CPU only), `steps`
    timed steps after `warmup` untimed ones, with `profile` (a new file) one more step profiled, and with `compile`
    the prepared model compiled."""

    device: str | None = None
    dtype: str = "float32"
    channels_last: bool | None = None
    steps: int = 3
    warmup: int = 1
    profile: str | None = None
    compile: bool = False

    def __post_init__(self):
        # With `compile` the Accelerator compiles the model it prepares with inductor one repeated block at a time
        # (Accelerate's regional compilation: a cell class is compiled once for its cells, not once per cell), as
        # `accelerate launch --dynamo_backend inductor --dynamo_use_regional_compilation` does for the scripts. The
        # architecture step's passes run the unprepared supernet and stay uncompiled. Accelerate keeps these settings
        # for the process (its first Accelerator's count), which is why the command runs each workload in a process
        # of its own; the report says what was done.
        plugin = TorchDynamoPlugin(backend="inductor", use_regional_compilation=True) if self.compile else None
        self.accelerator = Accelerator(
            cpu=self.device == "cpu", mixed_precision=DTYPES[self.dtype], dynamo_plugin=plugin
        )
        self.channels_last = use_channels_last(self.channels_last, self.accelerator.device)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

    def time(self, step) -> list[float]:
        """The times of the timed steps (see the class); with `profile`, one more step profiled."""
        device, timings = self.accelerator.device, []
        for index in range(self.warmup + self.steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index >= self.warmup:
                timings.append(time.perf_counter() - start)
        if self.profile is not None:
            _write_profile(step, device, self.profile)
        return timings

    def images(self, batch_size: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random images (in the measured layout) and labels of 10 classes."""
        pixels = torch.randn(batch_size, 3, image_size, image_size, device=self.accelerator.device)
        labels = torch.randint(0, 10, (batch_size,), device=self.accelerator.device)
        return pixels.contiguous(memory_format=self.memory_format), labels

    def report(self, workload: str, step, batch_size: int, samples: str = "images", **extra) -> dict:
        """Time `step` and report the median: per step, per second and per sample, with the peak memory."""
        seconds = sorted(self.time(step))[self.steps // 2]
        accelerator = self.accelerator
        return {
            "workload": workload,
            "device": str(accelerator.device),
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "compiled": accelerator.state.dynamo_plugin.backend != DynamoBackend.NO,
            "batch_size": batch_size,
            **extra,
            "seconds_per_step": round(seconds, 4),
            "steps_per_s": round(1 / seconds, 4),
            f"{samples}_per_s": round(batch_size / seconds, 2),
            "peak_memory_gb": round(_peak_memory_gb(accelerator.device), 3),
            "threads": torch.get_num_threads(),
            "allocator": current_allocator(),
        }

    def text_report(self, workload: str, step, batch_size: int, bptt: int, hidden_size: int) -> dict:
        """`report` for streams of text: also tokens/s (batch_size x bptt tokens per step)."""
        report = self.report(workload, step, batch_size, "sequences", bptt=bptt, hidden_size=hidden_size)
        report["channels_last"] = False  # no images
        report["tokens_per_s"] = round(batch_size * bptt / report["seconds_per_step"], 1)
        return report


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _write_profile(step, device: torch.device, path: str) -> None:
    """One step under `torch.profiler`, written to `path` (a new file): the operators by their own time, after a
    line for the matrix products (their time, share and rate in GFLOP/s, from the profiler's FLOP counts), which
    bound the recurrent steps: where that rate is the machine's, only the time outside them is left to cut."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, with_flops=True) as profiler:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = profiler.key_averages()
    own_time = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(event, own_time) for event in events)
    products = [event for event in events if event.key in MATRIX_PRODUCTS]
    product_time = sum(getattr(event, own_time) for event in products)
    product_flops = sum(event.flops for event in products)
    rate = product_flops / product_time / 1e3 if product_time else 0.0  # FLOP per microsecond / 1e3 = GFLOP/s
    with open(path, "x") as file:
        file.write(
            f"matrix products: {sum(event.count for event in products)} calls, {product_time / 1e3:.2f} ms of "
            f"{total / 1e3:.2f} ms ({product_time / max(total, 1):.0%}), {product_flops / 1e9:.3f} GFLOP, "
            f"{rate:.0f} GFLOP/s\n\n"
        )
        file.write(events.table(sort_by=own_time, row_limit=30) + "\n")


def _recipe_optimizers(supernet, recipe: dict):
    """The search's two optimizers with a search recipe's settings (SGD's momentum and Adam's betas where the recipe
    has them, PyTorch's defaults otherwise, as the searches)."""
    return search_optimizers(
        supernet,
        recipe["learning_rate"],
        recipe["weight_decay"],
        recipe["arch_learning_rate"],
        recipe["arch_weight_decay"],
        momentum=recipe.get("momentum", 0.0),
        arch_betas=(recipe.get("arch_beta1", 0.9), recipe.get("arch_beta2", 0.999)),
    )


def benchmark_search_step(
    order: int = 1,
    batch_size: int = 64,
    image_size: int = 32,
    init_channels: int = 16,
    num_cells: int = 8,
    activation_checkpointing: bool = False,
    partial_channels: int = 1,
    **measurement,
) -> dict:
    """One DARTS search step (architecture step + weight step, as in the search loop) at the paper's search size;
    `activation_checkpointing` recomputes each cell in the backward pass (`--activation_checkpointing` of the
    search); `partial_channels` K > 1 makes it a PC-DARTS step (with edge normalisation). `measurement`: the
    `Measurement` settings."""
    measure = Measurement(**measurement)
    config = DartsSearchConfig(
        init_channels=init_channels, num_cells=num_cells, image_size=image_size, partial_channels=partial_channels
    )
    supernet = kernelize(DartsSearchModel(config)).to(memory_format=measure.memory_format)
    if activation_checkpointing:
        supernet.activation_checkpointing_enable()
    recipe = CIFAR10_SEARCH
    weight_optimizer, arch_optimizer = _recipe_optimizers(supernet, recipe)
    accelerator = measure.accelerator
    model, weight_optimizer = accelerator.prepare(supernet, weight_optimizer)
    architect = Architect(supernet, arch_optimizer, order=order, autocast=accelerator.autocast)
    search_step = SearchStep(model, architect, weight_optimizer, accelerator, recipe["grad_clip"])
    train_batch, valid_batch = (
        dict(zip(("pixel_values", "labels"), measure.images(batch_size, image_size))) for _ in range(2)
    )
    return measure.report(
        f"search_step_order{order}",
        lambda: search_step(train_batch, valid_batch),
        batch_size,
        init_channels=init_channels,
        num_cells=num_cells,
        partial_channels=partial_channels,
    )


def _darts_v2_cifar(measure: Measurement) -> DartsForImageClassification:
    """The paper's CIFAR-10 network (DARTS_V2, 36 channels, 20 cells, auxiliary head, drop-path 0.2)."""
    model = kernelize(DartsForImageClassification(DartsConfig(genotype="DARTS_V2", drop_path_prob=0.2)))
    return model.to(memory_format=measure.memory_format)


def benchmark_train_step(batch_size: int = 32, **measurement) -> dict:
    """One training step of the DARTS_V2 CIFAR-10 network (the cifar recipe: auxiliary loss, drop-path, SGD)."""
    from .training.train_images import train_step

    measure = Measurement(**measurement)
    model = _darts_v2_cifar(measure)
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    model, optimizer = measure.accelerator.prepare(model, optimizer)
    model.train()
    pixels, labels = measure.images(batch_size, 32)

    def step():
        train_step(model, optimizer, pixels, labels, measure.accelerator, 5.0)

    return measure.report("train_step_darts_v2_cifar10", step, batch_size)


def benchmark_inference(batch_size: int = 64, **measurement) -> dict:
    """Inference of the DARTS_V2 CIFAR-10 network (eval mode, no gradients)."""
    measure = Measurement(**measurement)
    model = measure.accelerator.prepare(_darts_v2_cifar(measure)).eval()
    pixels, _ = measure.images(batch_size, 32)

    @torch.no_grad()
    def step():
        with measure.accelerator.autocast():
            model(pixel_values=pixels)

    return measure.report("inference_darts_v2_cifar10", step, batch_size)


def benchmark_onnx_inference(
    batch_size: int = 64, init_channels: int = 36, num_cells: int = 20, **measurement
) -> dict:
    """Inference of the DARTS_V2 CIFAR-10 network (by default the paper's size) exported by darts-export (ONNX), run
    by onnxruntime's CPU provider (on the CPU whatever the machine has) with as many threads as PyTorch uses; with
    the sizes of the ONNX file and of the safetensors weights."""
    import onnxruntime

    from .export import export_onnx

    if measurement.setdefault("device", "cpu") != "cpu":
        raise ValueError("inference_onnx runs onnxruntime's CPU provider: measure it with --device cpu.")
    measure = Measurement(**measurement)
    config = DartsConfig(genotype="DARTS_V2", init_channels=init_channels, num_cells=num_cells)
    model = DartsForImageClassification(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        exported = export_onnx(model, Path(folder) / "model.onnx")
        model.save_pretrained(folder)
        weights_bytes = (Path(folder) / "model.safetensors").stat().st_size
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(exported["file"], options, providers=["CPUExecutionProvider"])
    pixels = torch.randn(batch_size, 3, 32, 32).numpy()

    def step():
        session.run(["logits"], {"pixel_values": pixels})

    report = measure.report(
        "inference_onnx_darts_v2_cifar10",
        step,
        batch_size,
        onnx_bytes=exported["bytes"],
        safetensors_bytes=weights_bytes,
        onnxruntime=onnxruntime.__version__,
    )
    report["channels_last"] = False  # onnxruntime's own layout
    return report


def _text_batch(measure: Measurement, batch_size: int, bptt: int, hidden_size: int, vocab_size: int) -> dict:
    """Random tokens: `bptt` inputs and their next tokens per stream, and a zero recurrent state."""
    device = measure.accelerator.device
    tokens = torch.randint(0, vocab_size, (batch_size, bptt + 1), device=device)
    hidden = torch.zeros(batch_size, hidden_size, device=device)
    return {"input_ids": tokens[:, :-1], "targets": tokens[:, 1:], "hidden_state": hidden}


def benchmark_recurrent_search_step(
    order: int = 1,
    batch_size: int = 64,
    bptt: int = 35,
    hidden_size: int = 300,
    vocab_size: int = 10000,
    **measurement,
) -> dict:
    """One recurrent search step (architecture step + weight step) at the paper's PTB search size; the same
    `SearchStep` as the convolutional search, with the recurrent search's optimizers, clipping (0.25) and activation
    regularisation."""
    from .training.search_text import slowness_regulariser

    measure = Measurement(**measurement)
    accelerator, recipe = measure.accelerator, PTB_SEARCH
    supernet = kernelize(DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=vocab_size, hidden_size=hidden_size)))
    weight_optimizer, arch_optimizer = _recipe_optimizers(supernet, recipe)
    model, weight_optimizer = accelerator.prepare(supernet, weight_optimizer)
    architect = Architect(
        supernet, arch_optimizer, order=order, unrolled_grad_clip=recipe["grad_clip"], autocast=accelerator.autocast
    )
    regulariser = slowness_regulariser(recipe["tar_beta"])
    search_step = SearchStep(model, architect, weight_optimizer, accelerator, recipe["grad_clip"], regulariser)
    sizes = (batch_size, bptt, hidden_size, vocab_size)
    train_batch = {**_text_batch(measure, *sizes), "output_hidden_states": True}
    valid_batch = _text_batch(measure, *sizes)
    return measure.text_report(
        f"recurrent_search_step_order{order}",
        lambda: search_step(train_batch, valid_batch),
        batch_size,
        bptt,
        hidden_size,
    )


def benchmark_recurrent_train_step(
    batch_size: int = 64, bptt: int = 35, hidden_size: int = 850, vocab_size: int = 10000, **measurement
) -> dict:
    """One training step of the DARTS_V2 PTB language model (the ptb recipe: dropouts, TAR, clipping, SGD at lr 20)
    on a chunk of `bptt` tokens, through the training loop's `language_model_step`."""
    from .training.train_text import language_model_step

    measure = Measurement(**measurement)
    recipe = {**LANGUAGE_MODEL_TRAINING_COMMON, **LANGUAGE_MODEL_TRAINING["ptb"]}
    config = DartsRNNConfig(vocab_size=vocab_size, hidden_size=hidden_size, dropout_h=recipe["dropout_h"])
    model = kernelize(DartsRNNForCausalLM(config))
    optimizer = torch.optim.SGD(model.parameters(), recipe["learning_rate"], weight_decay=recipe["weight_decay"])
    model, optimizer = measure.accelerator.prepare(model, optimizer)
    model.train()
    batch = _text_batch(measure, batch_size, bptt, hidden_size, vocab_size)

    def step():
        language_model_step(
            model,
            optimizer,
            batch["input_ids"],
            batch["targets"],
            batch["hidden_state"],
            measure.accelerator,
            bptt=bptt,
            grad_clip=recipe["grad_clip"],
            tar_beta=recipe["tar_beta"],
        )

    return measure.text_report("recurrent_train_step_darts_v2_ptb", step, batch_size, bptt, hidden_size)


WORKLOADS = {
    "search_first_order": lambda **kw: benchmark_search_step(order=1, **kw),
    "search_second_order": lambda **kw: benchmark_search_step(order=2, **kw),
    "train_step": benchmark_train_step,
    "inference": benchmark_inference,
    "inference_onnx": benchmark_onnx_inference,
    "recurrent_search_first_order": lambda **kw: benchmark_recurrent_search_step(order=1, **kw),
    "recurrent_search_second_order": lambda **kw: benchmark_recurrent_search_step(order=2, **kw),
    "recurrent_train_step": benchmark_recurrent_train_step,
}

__all__ = [
    "WORKLOADS",
    "Measurement",
    "benchmark_inference",
    "benchmark_onnx_inference",
    "benchmark_recurrent_search_step",
    "benchmark_recurrent_train_step",
    "benchmark_search_step",
    "benchmark_train_step",
]

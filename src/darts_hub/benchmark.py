"""Speed and memory of the expensive steps, measured on the real code paths (used by `scripts/benchmark.py`).

Each workload reports seconds per step, steps/s, images/s and peak memory: CUDA's peak allocation on a GPU, the peak
resident set size of the process on the CPU (so run one workload per process for a clean figure). Each workload
imports the training code its step needs when it runs, so that the peak counts what a user of that step loads:
inference loads the model code, not the training stack (`datasets`, matplotlib: 0.11 GB).
"""

from __future__ import annotations

import resource
import time

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
from .training.layout import use_channels_last


DTYPES = {"float32": "no", "bfloat16": "bf16", "float16": "fp16"}


def _accelerator(device: str | None, dtype: str, compile: bool) -> Accelerator:
    """The workloads' Accelerator (`device` "cpu" keeps it on the CPU). With `compile` it compiles the model it prepares
    with inductor one repeated block at a time (Accelerate's regional compilation: a cell class is compiled once for
    its cells, not once per cell), as `accelerate launch --dynamo_backend inductor --dynamo_use_regional_compilation`
    does for the scripts. The architecture step's passes run the unprepared supernet and stay uncompiled. Accelerate
    keeps these settings for the process (its first Accelerator's count), which is why the command runs each workload
    in a process of its own; the report says what was done."""
    dynamo_plugin = TorchDynamoPlugin(backend="inductor", use_regional_compilation=True) if compile else None
    return Accelerator(cpu=device == "cpu", mixed_precision=DTYPES[dtype], dynamo_plugin=dynamo_plugin)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def _timed(step, steps: int, warmup: int, device: torch.device, profile: str | None = None) -> list[float]:
    """The times of `steps` steps after `warmup` untimed ones; with `profile` (a path), one more step profiled."""
    timings = []
    for index in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            timings.append(time.perf_counter() - start)
    if profile is not None:
        _write_profile(step, device, profile)
    return timings


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


def benchmark_search_step(
    order: int = 1,
    batch_size: int = 64,
    image_size: int = 32,
    init_channels: int = 16,
    num_cells: int = 8,
    device: str | None = None,
    dtype: str = "float32",
    channels_last: bool | None = None,
    activation_checkpointing: bool = False,
    partial_channels: int = 1,
    steps: int = 3,
    warmup: int = 1,
    profile: str | None = None,
    compile: bool = False,
) -> dict:
    """One DARTS search step (architecture step + weight step, as in the search loop) at the paper's search size;
    `activation_checkpointing` recomputes each cell in the backward pass (`--activation_checkpointing` of the
    search); `partial_channels` K > 1 makes it a PC-DARTS step (with edge normalisation)."""
    from .training.search_images import search_optimizers, search_step

    accelerator = _accelerator(device, dtype, compile)
    channels_last = use_channels_last(channels_last, accelerator.device)
    supernet = kernelize(
        DartsSearchModel(
            DartsSearchConfig(
                init_channels=init_channels,
                num_cells=num_cells,
                image_size=image_size,
                partial_channels=partial_channels,
            )
        )
    )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    supernet = supernet.to(memory_format=memory_format)
    if activation_checkpointing:
        supernet.activation_checkpointing_enable()
    recipe = CIFAR10_SEARCH
    weight_optimizer, arch_optimizer = search_optimizers(
        supernet,
        recipe["learning_rate"],
        recipe["weight_decay"],
        recipe["arch_learning_rate"],
        recipe["arch_weight_decay"],
        momentum=recipe["momentum"],
        arch_betas=(recipe["arch_beta1"], recipe["arch_beta2"]),
    )
    model, weight_optimizer = accelerator.prepare(supernet, weight_optimizer)
    architect = Architect(supernet, arch_optimizer, order=order, autocast=accelerator.autocast)
    weight_parameters = supernet.weight_parameters()

    def batch():
        pixels = torch.randn(batch_size, 3, image_size, image_size, device=accelerator.device)
        labels = torch.randint(0, 10, (batch_size,), device=accelerator.device)
        return {"pixel_values": pixels.contiguous(memory_format=memory_format), "labels": labels}

    train_batch, valid_batch = batch(), batch()

    def step():
        search_step(
            model,
            architect,
            weight_optimizer,
            weight_parameters,
            train_batch,
            valid_batch,
            accelerator,
            recipe["grad_clip"],
        )

    timings = _timed(step, steps, warmup, accelerator.device, profile)
    return _report(
        f"search_step_order{order}",
        accelerator,
        timings,
        batch_size,
        dtype,
        channels_last,
        init_channels=init_channels,
        num_cells=num_cells,
        partial_channels=partial_channels,
    )


def _darts_v2_cifar(accelerator: Accelerator, channels_last: bool) -> DartsForImageClassification:
    """The paper's CIFAR-10 network (DARTS_V2, 36 channels, 20 cells, auxiliary head, drop-path 0.2)."""
    model = kernelize(DartsForImageClassification(DartsConfig(genotype="DARTS_V2", drop_path_prob=0.2)))
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _images(accelerator, batch_size, image_size, channels_last):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    pixels = torch.randn(batch_size, 3, image_size, image_size, device=accelerator.device)
    labels = torch.randint(0, 10, (batch_size,), device=accelerator.device)
    return pixels.contiguous(memory_format=memory_format), labels


def _report(workload, accelerator, timings, batch_size, dtype, channels_last, samples="images", **extra) -> dict:
    seconds = sorted(timings)[len(timings) // 2]
    return {
        "workload": workload,
        "device": str(accelerator.device),
        "dtype": dtype,
        "channels_last": channels_last,
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


def _text_report(workload, accelerator, timings, batch_size, dtype, bptt, hidden_size) -> dict:
    """`_report` for streams of text: also tokens/s (batch_size x bptt tokens per step)."""
    report = _report(
        workload, accelerator, timings, batch_size, dtype, False, "sequences", bptt=bptt, hidden_size=hidden_size
    )
    report["tokens_per_s"] = round(batch_size * bptt / report["seconds_per_step"], 1)
    return report


def benchmark_train_step(
    batch_size: int = 32,
    device: str | None = None,
    dtype: str = "float32",
    channels_last: bool | None = None,
    steps: int = 3,
    warmup: int = 1,
    profile: str | None = None,
    compile: bool = False,
    **_,
) -> dict:
    """One training step of the DARTS_V2 CIFAR-10 network (the cifar recipe: auxiliary loss, drop-path, SGD)."""
    from .training.train_images import train_step

    accelerator = _accelerator(device, dtype, compile)
    channels_last = use_channels_last(channels_last, accelerator.device)
    model = _darts_v2_cifar(accelerator, channels_last)
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    pixels, labels = _images(accelerator, batch_size, 32, channels_last)
    timings = _timed(
        lambda: train_step(model, optimizer, pixels, labels, accelerator, 5.0),
        steps,
        warmup,
        accelerator.device,
        profile,
    )
    return _report("train_step_darts_v2_cifar10", accelerator, timings, batch_size, dtype, channels_last)


def benchmark_inference(
    batch_size: int = 64,
    device: str | None = None,
    dtype: str = "float32",
    channels_last: bool | None = None,
    steps: int = 3,
    warmup: int = 1,
    profile: str | None = None,
    compile: bool = False,
    **_,
) -> dict:
    """Inference of the DARTS_V2 CIFAR-10 network (eval mode, no gradients)."""
    accelerator = _accelerator(device, dtype, compile)
    channels_last = use_channels_last(channels_last, accelerator.device)
    model = accelerator.prepare(_darts_v2_cifar(accelerator, channels_last)).eval()
    pixels, _ = _images(accelerator, batch_size, 32, channels_last)

    @torch.no_grad()
    def step():
        with accelerator.autocast():
            model(pixel_values=pixels)

    timings = _timed(step, steps, warmup, accelerator.device, profile)
    return _report("inference_darts_v2_cifar10", accelerator, timings, batch_size, dtype, channels_last)


def benchmark_recurrent_search_step(
    order: int = 1,
    batch_size: int = 64,
    bptt: int = 35,
    hidden_size: int = 300,
    vocab_size: int = 10000,
    device: str | None = None,
    dtype: str = "float32",
    channels_last: bool | None = None,
    steps: int = 3,
    warmup: int = 1,
    profile: str | None = None,
    compile: bool = False,
) -> dict:
    """One recurrent search step (architecture step + weight step) at the paper's PTB search size; the same
    `search_step` as the convolutional search, with the recurrent search's optimizers, clipping (0.25) and activation
    regularisation."""
    from .training.search_images import search_optimizers, search_step
    from .training.search_text import slowness_regulariser

    accelerator = _accelerator(device, dtype, compile)
    recipe = PTB_SEARCH
    supernet = kernelize(DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=vocab_size, hidden_size=hidden_size)))
    weight_optimizer, arch_optimizer = search_optimizers(
        supernet,
        recipe["learning_rate"],
        recipe["weight_decay"],
        recipe["arch_learning_rate"],
        recipe["arch_weight_decay"],
    )
    model, weight_optimizer = accelerator.prepare(supernet, weight_optimizer)
    architect = Architect(
        supernet, arch_optimizer, order=order, unrolled_grad_clip=recipe["grad_clip"], autocast=accelerator.autocast
    )

    def batch():
        tokens = torch.randint(0, vocab_size, (batch_size, bptt + 1), device=accelerator.device)
        hidden = torch.zeros(batch_size, hidden_size, device=accelerator.device)
        return {"input_ids": tokens[:, :-1], "targets": tokens[:, 1:], "hidden_state": hidden}

    train_batch, valid_batch = {**batch(), "output_hidden_states": True}, batch()
    weight_parameters = supernet.weight_parameters()
    slowness = slowness_regulariser(recipe["tar_beta"])
    timings = _timed(
        lambda: search_step(
            model,
            architect,
            weight_optimizer,
            weight_parameters,
            train_batch,
            valid_batch,
            accelerator,
            recipe["grad_clip"],
            slowness,
        ),
        steps,
        warmup,
        accelerator.device,
        profile,
    )
    return _text_report(
        f"recurrent_search_step_order{order}", accelerator, timings, batch_size, dtype, bptt, hidden_size
    )


def benchmark_recurrent_train_step(
    batch_size: int = 64,
    bptt: int = 35,
    hidden_size: int = 850,
    vocab_size: int = 10000,
    device: str | None = None,
    dtype: str = "float32",
    channels_last: bool | None = None,
    steps: int = 3,
    warmup: int = 1,
    profile: str | None = None,
    compile: bool = False,
) -> dict:
    """One training step of the DARTS_V2 PTB language model (the ptb recipe: dropouts, TAR, clipping, SGD at lr 20)
    on a chunk of `bptt` tokens, through the training loop's `language_model_step`."""
    from .training.train_text import language_model_step

    accelerator = _accelerator(device, dtype, compile)
    recipe = {**LANGUAGE_MODEL_TRAINING_COMMON, **LANGUAGE_MODEL_TRAINING["ptb"]}
    model = kernelize(
        DartsRNNForCausalLM(
            DartsRNNConfig(vocab_size=vocab_size, hidden_size=hidden_size, dropout_h=recipe["dropout_h"])
        )
    )
    optimizer = torch.optim.SGD(model.parameters(), recipe["learning_rate"], weight_decay=recipe["weight_decay"])
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    tokens = torch.randint(0, vocab_size, (batch_size, bptt + 1), device=accelerator.device)
    hidden = torch.zeros(batch_size, hidden_size, device=accelerator.device)
    timings = _timed(
        lambda: language_model_step(
            model,
            optimizer,
            tokens[:, :-1],
            tokens[:, 1:],
            hidden,
            accelerator,
            bptt=bptt,
            grad_clip=recipe["grad_clip"],
            tar_beta=recipe["tar_beta"],
        ),
        steps,
        warmup,
        accelerator.device,
        profile,
    )
    return _text_report(
        "recurrent_train_step_darts_v2_ptb", accelerator, timings, batch_size, dtype, bptt, hidden_size
    )


WORKLOADS = {
    "search_first_order": lambda **kw: benchmark_search_step(order=1, **kw),
    "search_second_order": lambda **kw: benchmark_search_step(order=2, **kw),
    "train_step": benchmark_train_step,
    "inference": benchmark_inference,
    "recurrent_search_first_order": lambda **kw: benchmark_recurrent_search_step(order=1, **kw),
    "recurrent_search_second_order": lambda **kw: benchmark_recurrent_search_step(order=2, **kw),
    "recurrent_train_step": benchmark_recurrent_train_step,
}

__all__ = [
    "WORKLOADS",
    "benchmark_inference",
    "benchmark_recurrent_search_step",
    "benchmark_recurrent_train_step",
    "benchmark_search_step",
    "benchmark_train_step",
]

"""The benchmark's workloads time the real steps of the library (at tiny sizes here), once per timed step."""

import subprocess
import sys

import pytest
import torch
from accelerate.state import AcceleratorState

from darts_hub import benchmark
from darts_hub.models import DartsForImageClassification
from darts_hub.search.architect import Architect
from darts_hub.search.step import SearchStep
from darts_hub.training import train_images, train_text


TINY_TEXT = dict(batch_size=2, bptt=4, hidden_size=8, vocab_size=30, device="cpu", steps=2, warmup=1)
TINY_IMAGES = dict(batch_size=2, device="cpu", steps=2, warmup=1)

WORKLOADS = {
    # workload, (owner of the function that must run), its name
    "search": (
        lambda: benchmark.benchmark_search_step(order=2, image_size=8, init_channels=4, num_cells=3, **TINY_IMAGES),
        (Architect, "_finite_difference_gradients"),
    ),
    "pc_darts_search": (
        lambda: benchmark.benchmark_search_step(
            image_size=8, init_channels=4, num_cells=3, partial_channels=2, **TINY_IMAGES
        ),
        (SearchStep, "__call__"),
    ),
    "train": (lambda: benchmark.benchmark_train_step(**TINY_IMAGES), (train_images, "train_step")),
    "inference": (lambda: benchmark.benchmark_inference(**TINY_IMAGES), (DartsForImageClassification, "forward")),
    "recurrent_search": (
        lambda: benchmark.benchmark_recurrent_search_step(order=1, **TINY_TEXT),
        (SearchStep, "__call__"),
    ),
    "recurrent_train": (
        lambda: benchmark.benchmark_recurrent_train_step(**TINY_TEXT),
        (train_text, "language_model_step"),
    ),
}


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workloads_time_the_library_step_once_per_step(name, monkeypatch):
    workload, (owner, function) = WORKLOADS[name]
    original, calls = getattr(owner, function), []

    def counted(*args, **kwargs):
        calls.append(function)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, function, counted)
    report = workload()
    assert len(calls) == 3  # one warm-up step and two timed steps, each running the library's own step
    assert report["seconds_per_step"] > 0 and report["peak_memory_gb"] > 0
    assert report.get("partial_channels") == {"search": 1, "pc_darts_search": 2}.get(name)


def test_the_onnx_workload_times_onnxruntime_on_the_exported_network_and_reports_both_sizes(monkeypatch):
    import onnxruntime

    calls = []
    original = onnxruntime.InferenceSession.run
    monkeypatch.setattr(
        onnxruntime.InferenceSession, "run", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    report = benchmark.benchmark_onnx_inference(init_channels=4, num_cells=3, **TINY_IMAGES)
    assert len(calls) == 1 + 3  # the export's check, then one warm-up step and two timed steps
    assert report["workload"] == "inference_onnx_darts_v2_cifar10" and report["seconds_per_step"] > 0
    assert report["onnx_bytes"] > 0 and report["safetensors_bytes"] > 0
    with pytest.raises(ValueError, match="onnxruntime's CPU provider: measure it with --device cpu"):
        benchmark.benchmark_onnx_inference(device="cuda")


def test_image_workloads_measure_the_layout_the_scripts_use():
    # On the CPU the scripts run channels-last (training.layout.use_channels_last); the benchmark's default follows.
    assert benchmark.benchmark_inference(**TINY_IMAGES)["channels_last"] is True
    assert benchmark.benchmark_inference(channels_last=False, **TINY_IMAGES)["channels_last"] is False


@pytest.mark.parametrize("flag", [["--partial_channels", "4"], ["--activation_checkpointing"]])
def test_search_only_flags_are_refused_for_other_workloads(flag, monkeypatch, capsys):
    from darts_hub.commands import benchmark as command

    monkeypatch.setattr("sys.argv", ["benchmark.py", "--workload", "inference", *flag])
    with pytest.raises(SystemExit):
        command.main()
    assert f"{flag[0]} applies to the search workloads" in capsys.readouterr().err


def test_the_benchmark_loads_the_training_stack_only_for_the_workloads_that_train():
    # The peak memory of a workload counts what it imports: inference must not load datasets or matplotlib
    # (0.11 GB), which only the training steps need.
    code = (
        "import sys\n"
        "from darts_hub import benchmark\n"
        "heavy = [name for name in ('datasets', 'matplotlib', 'darts_hub.training.loop') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
        "benchmark.benchmark_inference(batch_size=1, device='cpu', steps=1, warmup=0)\n"
        "assert 'datasets' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_profile_gives_the_matrix_products_share_and_the_operators(tmp_path):
    path = tmp_path / "profile.txt"
    benchmark.benchmark_recurrent_train_step(profile=str(path), **TINY_TEXT)
    summary, _, table = path.read_text().partition("\n\n")
    words = summary.split()
    assert words[:2] == ["matrix", "products:"] and int(words[2]) > 0 and words[-1] == "GFLOP/s"
    product_time, step_time = float(words[4]), float(words[7])  # milliseconds
    assert 0 < product_time <= step_time
    assert "aten::mm" in table and "Self CPU" in table


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--profile", "new.txt"], "--profile profiles one workload"),
        (["--workload", "inference", "--profile", "mine.txt"], "--profile mine.txt exists"),
    ],
)
def test_a_profile_is_written_to_a_new_file_of_one_workload(arguments, message, tmp_path, monkeypatch, capsys):
    from darts_hub.commands import benchmark as command

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("mine")
    monkeypatch.setattr("sys.argv", ["benchmark.py", *arguments])
    with pytest.raises(SystemExit):
        command.main()
    assert message in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "mine" and not (tmp_path / "new.txt").exists()


def test_compile_has_accelerate_compile_the_prepared_model_cell_by_cell(monkeypatch):
    # Accelerate's regional compilation: torch.compile on each repeated block (the cells), not on the whole model.
    # (Recorded, not run: inductor on the 20 cells takes minutes on 2 CPU cores; docs/results.md has real runs.)
    compiled = []

    def recorded(module, **options):
        compiled.append((type(module).__name__, options["backend"]))
        return module

    monkeypatch.setattr(torch, "compile", recorded)
    # Accelerate keeps its state, the compile settings too, for the whole process: the first Accelerator's count.
    AcceleratorState._reset_state()
    try:
        report = benchmark.benchmark_inference(compile=True, **TINY_IMAGES)
    finally:
        AcceleratorState._reset_state()  # the later tests' Accelerators must not compile
    assert report["compiled"] is True and ("FastDartsCell", "inductor") in compiled  # the kernelized cell
    assert ("DartsForImageClassification", "inductor") not in compiled
    assert benchmark.benchmark_inference(**TINY_IMAGES)["compiled"] is False


@pytest.mark.parametrize("compile_flag", [[], ["--compile"]])
def test_all_runs_every_workload_with_the_same_settings(compile_flag, monkeypatch):
    from darts_hub.commands import benchmark as command

    commands = []
    monkeypatch.setattr(command, "run_under_tcmalloc", lambda: None)
    monkeypatch.setattr(command.subprocess, "run", lambda arguments, check: commands.append(arguments))
    monkeypatch.setattr("sys.argv", ["benchmark.py", "--steps", "5", *compile_flag])
    command.main()
    assert [arguments[arguments.index("--workload") + 1] for arguments in commands] == list(benchmark.WORKLOADS)
    for arguments in commands:
        assert "--steps=5" in arguments and [a for a in arguments if a.startswith("--compile")] == compile_flag

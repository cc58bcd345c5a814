"""The benchmark's workloads run the real steps (at tiny sizes here) and report what the README's table shows."""

import pytest

from darts_hub.benchmark import (
    benchmark_inference,
    benchmark_recurrent_search_step,
    benchmark_recurrent_train_step,
    benchmark_search_step,
    benchmark_train_step,
)


TINY_TEXT = dict(batch_size=2, bptt=4, hidden_size=8, vocab_size=30, device="cpu", steps=1, warmup=0)


@pytest.mark.parametrize(
    "workload",
    [
        lambda: benchmark_search_step(order=2, batch_size=2, image_size=8, init_channels=4, num_cells=3, steps=1),
        lambda: benchmark_train_step(batch_size=2, device="cpu", steps=1, warmup=0),
        lambda: benchmark_inference(batch_size=1, device="cpu", steps=1, warmup=0),
        lambda: benchmark_recurrent_search_step(order=2, **TINY_TEXT),
        lambda: benchmark_recurrent_train_step(**TINY_TEXT),
    ],
    ids=["search", "train", "inference", "recurrent_search", "recurrent_train"],
)
def test_workloads_report_time_throughput_and_memory(workload):
    report = workload()
    assert report["seconds_per_step"] > 0 and report["peak_memory_gb"] > 0
    # (Figures are rounded to 4 decimals: at these sizes a step takes a few milliseconds.)
    assert report["steps_per_s"] == pytest.approx(1 / report["seconds_per_step"], rel=0.05)
    if "bptt" in report:
        assert report["tokens_per_s"] == pytest.approx(2 * 4 * report["steps_per_s"], rel=0.05)

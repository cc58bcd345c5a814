import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs_dot

from darts_hub import NasBench201Config
from darts_hub.models.genotypes import DARTS_V2, RECURRENT_DARTS_V2, NasBench201Genotype, get_genotype, load_genotype
from darts_hub.visualize import draw_cell, draw_genotype, genotype_graphs


REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cell_graph_follows_the_genotype():
    source = draw_cell(DARTS_V2.node_edges("normal"), DARTS_V2.normal_concat).source
    assert '"c_{k-2}" -> 0 [label=sep_conv_3x3' in source
    assert '"c_{k-1}" -> 2 [label=sep_conv_3x3' in source
    assert "0 -> 3 [label=dil_conv_3x3" in source  # state 2 is intermediate node 0
    for node in range(4):
        assert f'{node} -> "c_{{k}}"' in source


def test_concat_decides_which_nodes_reach_the_output():
    amoeba = get_genotype("AmoebaNet")  # reduction concat (3, 4, 6): nodes 1, 2 and 4
    source = genotype_graphs(amoeba)["reduction"].source
    assert [node for node in range(5) if f'{node} -> "c_{{k}}"' in source] == [1, 2, 4]


def test_recurrent_graph():
    source = genotype_graphs(RECURRENT_DARTS_V2)["recurrent"].source
    assert '"x_{t}" -> 0' in source and '"h_{t-1}" -> 0' in source
    assert "0 -> 1 [label=sigmoid" in source and "5 -> 8 [label=relu" in source
    assert all(f'{node} -> "h_{{t}}"' in source for node in range(1, 9))


@needs_dot
@pytest.mark.parametrize("format, magic", [("png", PNG_MAGIC), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_drawings_render(tmp_path, format, magic):
    paths = draw_genotype(DARTS_V2, tmp_path, format=format, prefix="darts_v2_")
    assert [p.name for p in paths] == [f"darts_v2_normal.{format}", f"darts_v2_reduction.{format}"]
    for path in paths:
        assert path.read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no leftover sources


def test_without_dot_the_source_is_written_with_install_hint(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING, logger="darts_hub.visualize"):
        paths = draw_genotype(DARTS_V2, tmp_path / "out")
    assert [p.name for p in paths] == ["normal.gv", "reduction.gv"]
    assert "digraph" in paths[0].read_text()
    assert "apt-get install graphviz" in caplog.text


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="png, svg, pdf"):
        draw_genotype(DARTS_V2, tmp_path, format="jpg")


@needs_dot
def test_visualize_script_as_a_user_runs_it(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "visualize.py")]
    out = subprocess.run(
        script + ["NASNet", "--output_dir", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [str(tmp_path / "normal.png"), str(tmp_path / "reduction.png")]
    assert (tmp_path / "normal.png").read_bytes().startswith(PNG_MAGIC)


@needs_dot
def test_visualize_script_on_json_and_folder(tmp_path, run_script):
    (tmp_path / "cell.json").write_text(RECURRENT_DARTS_V2.to_json())
    out = run_script("visualize", tmp_path / "cell.json", "--output_dir", tmp_path / "json", "--format", "svg")
    assert out.split() == [str(tmp_path / "json" / "recurrent.svg")]

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "darts", "genotype": DARTS_V2.to_dict()}))
    run_script("visualize", folder, "--output_dir", tmp_path / "folder", "--prefix", "v2_")
    assert (tmp_path / "folder" / "v2_normal.png").read_bytes().startswith(PNG_MAGIC)

    with pytest.raises(FileNotFoundError, match="neither a zoo genotype"):
        run_script("visualize", "DARTS_V9")


def test_count_script_prints_the_paper_counts(run_script):
    counts = json.loads(run_script("count"))
    assert (counts["parameters"], counts["parameters_with_auxiliary"], counts["mult_adds"]) == (
        3_349_342,
        3_825_768,
        528_359_040,
    )


@needs_dot
def test_a_full_disk_is_named_and_leaves_no_truncated_drawing(tmp_path, monkeypatch):
    import errno

    from darts_hub import visualize

    def full_disk(path, data):
        path.open("wb").write(data[:10])  # what a full disk leaves: the start of the file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(visualize.Path, "write_bytes", full_disk)
    with pytest.raises(
        OSError, match=r"Could not write the drawing .*normal.png: No space left on device \(is the disk full\?\)"
    ):
        visualize.draw_genotype(get_genotype("DARTS_V2"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_nas_bench_201_cell_graph_leaves_none_out(tmp_path, run_script):
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    source = genotype_graphs(NasBench201Genotype.from_string(cell))["cell"].source
    assert '"c_{k-1}" -> 1 [label=nor_conv_3x3' in source and "1 -> 2 [label=skip_connect" in source
    assert '1 -> "c_{k}" [label=avg_pool_3x3' in source and '2 -> "c_{k}" [label=nor_conv_1x1' in source
    assert '"c_{k-1}" -> "c_{k}"' not in source  # the none edge
    folder = tmp_path / "model"
    NasBench201Config(genotype=cell).save_pretrained(folder)
    assert load_genotype(folder) == load_genotype(cell) == NasBench201Genotype.from_string(cell)
    if shutil.which("dot"):
        out = run_script("visualize", cell, "--output_dir", tmp_path / "cells")
        assert out.split() == [str(tmp_path / "cells" / "cell.png")]
        assert (tmp_path / "cells" / "cell.png").read_bytes().startswith(PNG_MAGIC)

"""Drawings of cells in the layout of the paper's figures (Fig. 4-6), rendered with graphviz.

Inputs on the left (c_{k-2}, c_{k-1} or x_t, h_{t-1}), intermediate nodes in blue, the output (c_k or h_t) in yellow,
and every edge labelled with its operation. The Python `graphviz` package only writes the graph; rendering needs the
`dot` binary. Without it, the `.gv` source is written instead and a warning says how to install graphviz.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import graphviz
from PIL import Image, ImageDraw, ImageFont

from .models.genotypes import Edge, Genotype, NasBench201Genotype, RecurrentGenotype, genotype_from_dict


logger = logging.getLogger(__name__)

FORMATS = ("png", "svg", "pdf")
INSTALL_HINT = (
    "the graphviz `dot` program is not installed: install it with `apt-get install graphviz` (Debian/Ubuntu), "
    "`brew install graphviz` (macOS) or `conda install graphviz`"
)

_INPUT_STYLE = {"fillcolor": "darkseagreen2"}
_NODE_STYLE = {"fillcolor": "lightblue"}
_OUTPUT_STYLE = {"fillcolor": "palegoldenrod"}


def _new_graph() -> graphviz.Digraph:
    graph = graphviz.Digraph(
        edge_attr={"fontsize": "20", "fontname": "times"},
        node_attr={
            "style": "filled",
            "shape": "rect",
            "align": "center",
            "fontsize": "20",
            "height": "0.5",
            "width": "0.5",
            "penwidth": "2",
            "fontname": "times",
        },
        engine="dot",
    )
    graph.attr(rankdir="LR")
    return graph


def draw_cell(node_edges: Sequence[Sequence[Edge]], concat: Sequence[int]) -> graphviz.Digraph:
    """A convolutional cell, given the edges of each intermediate node (`Genotype.node_edges`); the output
    concatenates the states in `concat`. A node without edges (FairDARTS) is not drawn."""
    graph = _new_graph()
    names = ["c_{k-2}", "c_{k-1}"] + [str(node) for node in range(len(node_edges))]
    for name in names[:2]:
        graph.node(name, **_INPUT_STYLE)
    for node, edges in enumerate(node_edges):
        if edges:
            graph.node(names[2 + node], **_NODE_STYLE)
        for op, index in edges:
            graph.edge(names[index], names[2 + node], label=op, fillcolor="gray")
    graph.node("c_{k}", **_OUTPUT_STYLE)
    for index in concat:
        graph.edge(names[index], "c_{k}", fillcolor="gray")
    return graph


def draw_recurrent_cell(edges: Sequence[Edge], concat: Sequence[int]) -> graphviz.Digraph:
    """A recurrent cell: node 0 mixes x_t and h_{t-1}, node i applies its activation to one earlier node, and h_t
    averages the nodes in `concat`."""
    graph = _new_graph()
    for name in ("x_{t}", "h_{t-1}"):
        graph.node(name, **_INPUT_STYLE)
        graph.edge(name, "0", fillcolor="gray")
    for node in range(len(edges) + 1):
        graph.node(str(node), **_NODE_STYLE)
    for position, (op, index) in enumerate(edges):
        graph.edge(str(index), str(position + 1), label=op, fillcolor="gray")
    graph.node("h_{t}", **_OUTPUT_STYLE)
    for index in concat:
        graph.edge(str(index), "h_{t}", fillcolor="gray")
    return graph


def draw_nas_bench_201_cell(nodes: Sequence[Sequence[Edge]]) -> graphviz.Digraph:
    """A NAS-Bench-201 cell: each node sums one edge from every earlier state, the last node is the output. Edges
    of `none` (which add nothing) are not drawn."""
    graph = _new_graph()
    graph.node("c_{k-1}", **_INPUT_STYLE)
    names = ["c_{k-1}", *map(str, range(1, len(nodes))), "c_{k}"]
    for node, edges in enumerate(nodes, start=1):
        graph.node(names[node], **(_OUTPUT_STYLE if node == len(nodes) else _NODE_STYLE))
        for op, index in edges:
            if op != "none":
                graph.edge(names[index], names[node], label=op, fillcolor="gray")
    return graph


def genotype_graphs(genotype: Genotype | RecurrentGenotype | NasBench201Genotype) -> dict[str, graphviz.Digraph]:
    """One graph per cell of the genotype, by cell name ("normal" and "reduction", "recurrent", or NAS-Bench-201's
    "cell")."""
    if isinstance(genotype, RecurrentGenotype):
        return {"recurrent": draw_recurrent_cell(genotype.recurrent, genotype.concat)}
    if isinstance(genotype, NasBench201Genotype):
        return {"cell": draw_nas_bench_201_cell(genotype.nodes)}
    return {
        "normal": draw_cell(genotype.node_edges("normal"), genotype.normal_concat),
        "reduction": draw_cell(genotype.node_edges("reduce"), genotype.reduce_concat),
    }


def cell_pictures(genotype: Genotype | RecurrentGenotype | NasBench201Genotype | dict) -> dict[str, Image.Image]:
    """The drawings of `genotype`'s cells (or of its `to_dict()`) as RGB pictures, by cell name. Raises
    `graphviz.ExecutableNotFound` without the `dot` binary."""
    if isinstance(genotype, dict):
        genotype = genotype_from_dict(genotype)
    return {
        name: Image.open(io.BytesIO(graph.pipe(format="png"))).convert("RGB")
        for name, graph in genotype_graphs(genotype).items()
    }


def drawable_cell_pictures(
    genotype: Genotype | RecurrentGenotype | NasBench201Genotype | dict, user: str
) -> dict[str, Image.Image]:
    """`cell_pictures`, or none without the `dot` binary, with a warning that `user` (the trackers, the demo page)
    goes without drawings of the cells."""
    try:
        return cell_pictures(genotype)
    except graphviz.ExecutableNotFound:
        logger.warning("No drawings of the cells for %s: %s.", user, INSTALL_HINT)
        return {}


def render(graph: graphviz.Digraph, path: str | Path, format: str = "png") -> Path:
    """Render `graph` to `path` + `.format`; without the `dot` binary write `path.gv` and warn. Returns the file."""
    if format not in FORMATS:
        raise ValueError(f"Unknown drawing format {format!r}; choose one of {', '.join(FORMATS)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_name(path.name + ".gv")
    try:
        drawing = graph.pipe(format=format)
    except graphviz.ExecutableNotFound:
        graph.save(source)
        logger.warning("Wrote the graph source %s instead of a %s drawing: %s.", source, format, INSTALL_HINT)
        return source
    output = path.with_name(f"{path.name}.{format}")
    partial = output.with_name(f".{output.name}.partial")
    try:  # a temporary file renamed when complete: a full disk leaves no truncated drawing
        partial.write_bytes(drawing)
        os.replace(partial, output)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OSError(
            f"Could not write the drawing {output}: {error.strerror or error} (is the disk full?)"
        ) from error
    return output


def draw_genotype(
    genotype: Genotype | RecurrentGenotype | NasBench201Genotype,
    output_dir: str | Path,
    format: str = "png",
    prefix: str = "",
) -> list[Path]:
    """Draw every cell of `genotype` into `output_dir` (`normal.png` and `reduction.png`, `recurrent.png` or
    `cell.png`)."""
    return [
        render(graph, Path(output_dir) / f"{prefix}{name}", format)
        for name, graph in genotype_graphs(genotype).items()
    ]


def animate_genotypes(
    frames: list[tuple[str, Genotype | RecurrentGenotype | NasBench201Genotype | dict]],
    path: str | Path,
    seconds_per_frame: float = 0.5,
) -> Path | None:
    """An animated GIF of the cells of each genotype in turn (the paper's "snapshots over time"), one frame per
    `(caption, genotype)`; the cells of a frame are stacked vertically under the caption.

    Returns the path, or None (with a warning) when there are no frames or no `dot` binary to render them.
    """
    if not frames:
        return None
    images = []
    try:
        for caption, genotype in frames:
            cells = list(cell_pictures(genotype).values())
            caption_height = 40
            frame = Image.new(
                "RGB", (max(c.width for c in cells), caption_height + sum(c.height for c in cells)), "white"
            )
            ImageDraw.Draw(frame).text((10, 8), caption, fill="black", font=ImageFont.load_default(size=24))
            top = caption_height
            for cell in cells:
                frame.paste(cell, (0, top))
                top += cell.height
            images.append(frame)
    except graphviz.ExecutableNotFound:
        logger.warning("No search animation: %s.", INSTALL_HINT)
        return None
    width, height = max(i.width for i in images), max(i.height for i in images)
    canvas = [Image.new("RGB", (width, height), "white") for _ in images]
    for background, image in zip(canvas, images):
        background.paste(image, (0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas[0].save(path, save_all=True, append_images=canvas[1:], duration=int(seconds_per_frame * 1000), loop=0)
    return path


__all__ = [
    "FORMATS",
    "animate_genotypes",
    "cell_pictures",
    "draw_cell",
    "draw_genotype",
    "draw_nas_bench_201_cell",
    "draw_recurrent_cell",
    "drawable_cell_pictures",
    "genotype_graphs",
    "render",
]

"""The fast paths of the DARTS models, behind one call: `kernelize(model)`.

`darts_hub.models` holds the models as the paper describes them, in plain PyTorch layers: what `save_pretrained`
ships as remote code. This package holds what makes them fast on the CPU without changing what they compute: C++
kernels (a depthwise convolution's backward pass, training-mode BatchNorm, the cells' 3x3 pooling, the recurrent
search node), memory-saving forward paths (one ReLU per tensor, BatchNorm folded into convolutions in evaluation,
states let go after their last reader), and the recurrent cells' backward pass through time written out.

`kernelize` swaps them in, in place: every module keeps its parameters, buffers and state-dict keys, only its class
(a subclass of the plain one) changes, so that checkpoints, optimizers and `save_pretrained` see the same model. The
commands call it on every model they run; the tests check that each fast path equals the plain one (outputs,
gradients, running statistics).
"""

from __future__ import annotations

from types import MethodType

from torch import nn

from ..models.modeling_darts import DartsCell, DartsModel
from ..models.modeling_darts_rnn import DartsRNNCell
from ..models.modeling_darts_rnn_search import DartsRNNSearchCell
from ..models.modeling_darts_search import MixedOp, SearchCell
from ..models.ops import DilConv, FactorizedReduce, ReLUConvBN, SepConv
from .batch_norm import BatchNorm2d
from .build import KERNELS, build_kernels, load_kernels
from .cells import (
    FastDartsCell,
    FastDartsRNNCell,
    FastDartsRNNSearchCell,
    FastMixedOp,
    FastSearchCell,
    rectify_once_forward,
)
from .depthwise import DepthwiseConv2d
from .operations import FastDilConv, FastFactorizedReduce, FastReLUConvBN, FastSepConv, FoldingSequential
from .pooling import AvgPool2d, MaxPool2d


# The plain class -> its fast subclass (exact classes: a subclass of a plain class may compute something else).
FAST_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Sequential: FoldingSequential,
    nn.BatchNorm2d: BatchNorm2d,
    nn.MaxPool2d: MaxPool2d,
    nn.AvgPool2d: AvgPool2d,
    ReLUConvBN: FastReLUConvBN,
    DilConv: FastDilConv,
    SepConv: FastSepConv,
    FactorizedReduce: FastFactorizedReduce,
    DartsCell: FastDartsCell,
    MixedOp: FastMixedOp,
    SearchCell: FastSearchCell,
    DartsRNNCell: FastDartsRNNCell,
    DartsRNNSearchCell: FastDartsRNNSearchCell,
}

# Models (`PreTrainedModel`s) keep their class, which names their code in a saved folder: their forward is replaced.
FAST_FORWARDS = {DartsModel: rectify_once_forward}


def is_depthwise(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
        and module.bias is None
    )


def kernelize(model: nn.Module, build: bool = True) -> nn.Module:
    """Swap the fast forms of its layers, cells and networks into `model`, in place, and return it.

    The results are the same (up to rounding); parameters, buffers and the state dict are untouched. With `build`,
    the C++ kernels (which run on the CPU) are compiled first if the model is on the CPU and this machine has not
    compiled them yet (once, behind a progress bar); where they cannot be, one warning says so and PyTorch's own
    layers run inside the fast forms. Calling it again changes nothing.
    """
    modules = list(model.modules())
    for module in modules:
        if is_depthwise(module):
            module.__class__ = DepthwiseConv2d
        elif type(module) in FAST_CLASSES:
            module.__class__ = FAST_CLASSES[type(module)]
        if type(module) in FAST_FORWARDS and "forward" not in vars(module):
            module.forward = MethodType(FAST_FORWARDS[type(module)], module)
    for module in reversed(modules):  # every module after the modules inside it
        if hasattr(module, "adopt"):
            module.adopt()
    if build and any(parameter.device.type == "cpu" for parameter in model.parameters()):
        build_kernels()
    return model


__all__ = ["FAST_CLASSES", "KERNELS", "build_kernels", "is_depthwise", "kernelize", "load_kernels"]

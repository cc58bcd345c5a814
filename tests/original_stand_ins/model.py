"""Stand-ins named like the original DARTS recurrent code (rnn/model.py), used by the tests to write a whole-model
pickle in the original form: the same class paths and attribute layout, tiny sizes. Not the original code."""

import torch
from torch import nn
from utils import LockedDropout


class DARTSCell(nn.Module):
    def __init__(self, ninp, nhid, genotype):
        super().__init__()
        self.nhid = nhid
        self.genotype = genotype
        self._W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-0.5, 0.5))
        self._Ws = nn.ParameterList(
            [nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-0.5, 0.5)) for _ in genotype.recurrent]
        )


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, genotype):
        super().__init__()
        self.lockdrop = LockedDropout()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = nn.ModuleList([DARTSCell(ninp, ninp, genotype)])
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.decoder.bias, -0.5, 0.5)

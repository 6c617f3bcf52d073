"""Inference-only rewrite of a trained EarlyExitNet, applied at export.

Profiling on this 2-core CPU showed that the MAC counts of facts.md do not
match where the time goes: conv1 (2 input channels, 3 % of the MACs) took as
long as conv2 (48 %), because oneDNN's convolution is inefficient for 2 input
channels, and BatchNorm and ReLU each add a pass over the largest activation
(64 x 128 floats per frame).  An exit right after conv1 (V0) then saved little.
So, for inference only:

* BatchNorm is folded into the convolution before it, and the model's
  constant input gain into conv1 (exact in eval mode);
* a convolution with few inputs per output (Cin * 3 <= 16, i.e. conv1) runs as
  a batched GEMM over unfolded windows (baddbmm), about 5-7x faster here;
* the paper's heads stack Linear layers with only Dropout between them (no
  activation), so in eval mode each stack is one affine map: it is collapsed
  into a single Linear (exit head 1024-64-32-10 -> 1024-10).  Profiled at
  batch 256, a head took about 6 % of the backbone's time, most of it in the
  1024-64 layer, so every exit a frame passes cost more than facts.md's MACs;
* where an exit head starts with MaxPool(k) (k even) and the next segment
  starts with MaxPool(2) on the same features (V1: head pool 4, then the
  backbone's pool after conv2), that MaxPool(2) moves to the end of the
  segment and the head pools by k/2 (max of max is max): the head reads half
  as much, and the rows that go on are gathered and cached pooled (half size).

The rewritten network keeps the EarlyExitNet structure (blocks, segment,
head) and methods, so the batched early exit is unchanged; its outputs equal
the original's to float rounding (tests: 1e-5).  The MAC figures in the
model's metadata stay those of the paper's layers (facts.md accounting).
"""
import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import InputGain

#: Convolutions with at most this many inputs per output (Cin * 3) run as a GEMM.
GEMM_MAX_INPUTS = 16

class FoldedConvReLU(nn.Module):
    """Conv1d(k=3, padding=1) with its BatchNorm folded in, then ReLU."""

    def __init__(self, conv: nn.Conv1d, bn: nn.BatchNorm1d, input_gain: float = 1.0):
        super().__init__()
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight.detach() * scale[:, None, None] * input_gain
        bias = (conv.bias.detach() - bn.running_mean) * scale + bn.bias.detach()
        if conv.kernel_size != (3,) or conv.padding != (1,) or conv.stride != (1,):
            raise ValueError("only the paper's Conv1d(k=3, padding=1) blocks can be folded")
        cout, cin, kernel = weight.shape
        self.as_gemm = cin * kernel <= GEMM_MAX_INPUTS
        self.register_buffer("weight", weight.contiguous())
        # [Cout, Cin*3], column c*3 + k: the order of the unfolded windows below.
        self.register_buffer("weight_gemm", weight.reshape(cout, cin * kernel).contiguous())
        self.register_buffer("bias", bias.contiguous())

    def forward(self, x: Tensor) -> Tensor:
        if self.as_gemm:
            batch, channels, length = x.shape
            windows = F.pad(x, (1, 1)).unfold(2, 3, 1)                       # [B, Cin, L, 3]
            windows = windows.permute(0, 1, 3, 2).reshape(batch, channels * 3, length)
            cout = self.weight_gemm.size(0)
            y = torch.baddbmm(self.bias[None, :, None].expand(batch, cout, length),
                              self.weight_gemm.expand(batch, cout, channels * 3), windows)
        else:
            y = F.conv1d(x, self.weight, self.bias, padding=1)
        return torch.relu_(y)


def _is_conv_block(layer):
    return (isinstance(layer, nn.Sequential) and len(layer) == 3 and isinstance(layer[0], nn.Conv1d)
            and isinstance(layer[1], nn.BatchNorm1d) and isinstance(layer[2], nn.ReLU))


def _fold_sequential(seq: nn.Sequential) -> nn.Sequential:
    layers = []
    gain = 1.0
    for layer in seq:
        if isinstance(layer, InputGain):
            gain *= layer.gain  # folded into the next convolution's weights
        elif _is_conv_block(layer):
            layers.append(FoldedConvReLU(layer[0], layer[1], gain))
            gain = 1.0
        else:
            if gain != 1.0:
                layers.append(InputGain(gain))
                gain = 1.0
            layers.append(layer)
    return nn.Sequential(*layers)


def _collapse_linear_chains(seq: nn.Sequential) -> nn.Sequential:
    """Replace every run of Linear layers separated only by Dropout (identity
    in eval mode) with one Linear: W = Wn...W1, b = Wn(...(W2 b1 + b2)...) + bn."""
    layers = []
    chain = []

    def flush():
        if not chain:
            return
        weight, bias = chain[0].weight.detach().double(), chain[0].bias.detach().double()
        for lin in chain[1:]:
            w = lin.weight.detach().double()
            weight, bias = w @ weight, w @ bias + lin.bias.detach().double()
        merged = nn.Linear(weight.shape[1], weight.shape[0])
        merged.weight.data.copy_(weight.float())
        merged.bias.data.copy_(bias.float())
        layers.append(merged)
        chain.clear()

    for layer in seq:
        if isinstance(layer, nn.Linear) and layer.bias is not None:
            chain.append(layer)
        elif isinstance(layer, nn.Dropout) and chain:
            continue  # identity at inference
        else:
            flush()
            layers.append(layer)
    flush()
    return nn.Sequential(*layers)


def _pool_size(layer):
    if isinstance(layer, nn.MaxPool1d):
        k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
        if k == s and layer.padding in (0, (0,)) and layer.dilation in (1, (1,)) and not layer.ceil_mode:
            return k
    return 0


def _share_pool(block, next_block):
    """Move next_block's leading MaxPool(2) into block when block's head pools by an even k."""
    head_pool = _pool_size(block.head[0]) if len(block.head) else 0
    next_pool = _pool_size(next_block.segment[0]) if len(next_block.segment) else 0
    if next_pool == 2 and head_pool >= 2 and head_pool % 2 == 0:
        block.segment = nn.Sequential(*block.segment, next_block.segment[0])
        next_block.segment = nn.Sequential(*list(next_block.segment)[1:])
        rest = list(block.head)[1:]
        block.head = nn.Sequential(*([nn.MaxPool1d(head_pool // 2)] if head_pool > 2 else []), *rest)


def for_inference(model):
    """A folded, eval-mode copy of ``model`` for export (the original is untouched)."""
    folded = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        blocks = list(folded.blocks)
        for block, next_block in zip(blocks[:-1], blocks[1:]):
            _share_pool(block, next_block)
        for block in blocks:
            block.segment = _fold_sequential(block.segment)
            block.head = _collapse_linear_chains(block.head)
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded

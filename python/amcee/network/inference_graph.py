"""Inference-only rewrite of a trained EarlyExitNet, applied at export.

On a CPU the time does not follow the multiply-accumulates of
docs/dataset-and-network.md: conv1 (2 input channels), the max-pools, the
BatchNorm/ReLU passes over the largest activations (64 x 128 floats per
frame) and the exit heads cost far more than their share of the MACs, so
frames leaving at V0/V1 saved far less time than MACs (the profile:
docs/performance.md).  So, for inference only (each step exact in eval mode):

* BatchNorm is folded into the convolution before it, and the model's
  constant input gain into conv1;
* features travel as [B, L, C] (length-major, channels innermost) and every
  convolution runs as a channels-last Conv2d, oneDNN's native layout: no
  reorder around each convolution, and conv1's 2 input channels run much
  faster than as a Conv1d;
* a MaxPool(2) right after a convolution is fused into it (max of even and
  odd positions before the ReLU, both monotone), other pools are elementwise
  maxima of whole C-vectors (vectorised, unlike MaxPool1d over the last axis);
* where an exit head starts with MaxPool(k) (k even) and the next segment
  with MaxPool(2) on the same features (V1: head pool 4, backbone pool after
  conv2), that pool moves to the end of the segment and the head pools by
  k/2: the head and the rows cached for the next segment are half the size;
* the paper's heads stack Linear layers with only Dropout between them (no
  activation), so each stack is one affine map: collapsed into one Linear
  (exit head 1024-64-32-10 -> 1024-10), its columns permuted to the [L, C]
  order, computed as W @ x^T;
* the conv exit head (architecture.conv_exit_head) keeps its layers: its pool,
  convolution and statistics run on [B, L, C] features as above.

The rewritten network keeps the EarlyExitNet structure (blocks, segment,
head) and methods, so the batched early exit is unchanged; its outputs equal
the original's to float rounding (tests: 1e-5).  The MAC figures in the
model's metadata stay those of the paper's layers (docs/dataset-and-network.md).
"""
import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architecture import BACKBONE_LAYERS, InputGain, StatsPool


def _fold_bn(conv: nn.Conv1d, bn: nn.BatchNorm1d, input_gain: float):
    """(weight [Cout, Cin, 3], bias [Cout]) of conv followed by eval-mode bn."""
    if conv.kernel_size != (3,) or conv.padding != (1,) or conv.stride != (1,):
        raise ValueError("only the paper's Conv1d(k=3, padding=1) blocks can be folded")
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight.detach() * scale[:, None, None] * input_gain
    bias = (conv.bias.detach() - bn.running_mean) * scale + bn.bias.detach()
    return weight, bias


class ConvReLU(nn.Module):
    """Convolution (BatchNorm folded) + ReLU, optionally + MaxPool(2), on
    [B, L, C] features, run as a channels-last Conv2d: oneDNN's native layout,
    so neither input nor output is reordered, and pooling over L is an
    elementwise max of whole C-vectors.  With ``from_frames`` the input is a
    batch of frames [B, C, L] (the first convolution).  The fused pool takes
    the max of even and odd positions before the ReLU (monotone, so the
    order does not matter) and saves a pass over the largest activation."""

    def __init__(self, weight: Tensor, bias: Tensor, pool: int = 1, from_frames: bool = False):
        super().__init__()
        if pool not in (1, 2):
            raise ValueError(f"a convolution fuses MaxPool(2) only, not MaxPool({pool})")
        self.register_buffer("weight", weight.unsqueeze(2).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", bias.contiguous())
        self.pool = pool
        self.from_frames = from_frames

    def forward(self, x: Tensor) -> Tensor:
        if self.from_frames:
            x = x.transpose(1, 2).contiguous()                            # [B, L, C]
        batch, length, _ = x.shape
        x4 = x.unsqueeze(1).permute(0, 3, 1, 2)                            # [B, C, 1, L], channels last
        y = F.conv2d(x4, self.weight, self.bias, padding=(0, 1))
        y = y.contiguous(memory_format=torch.channels_last)                # a no-op unless oneDNN chose otherwise
        y = y.permute(0, 2, 3, 1).reshape(batch, length, -1)               # [B, L, Cout], a view
        if self.pool == 2:
            y = y.view(batch, length // 2, 2, -1)
            y = torch.maximum(y[:, :, 0], y[:, :, 1])
        return torch.relu_(y)


def max_of_halves(x: Tensor, k: int) -> Tensor:
    """Max over windows of k (a power of 2) consecutive positions of [B, L, C]
    features, as [B, L/k, k*C] -> [B, L/k, C] maxima of contiguous halves:
    vectorised elementwise maxima, where torch.amax over the length is not."""
    batch, length, channels = x.shape
    y = x.reshape(batch, length // k, k * channels)
    while k > 1:
        k = k // 2
        y = torch.maximum(y[:, :, :k * channels], y[:, :, k * channels:])
    return y


class MaxPoolNLC(nn.Module):
    """MaxPool1d(k) over the length of [B, L, C] features."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        k = self.k
        if k & (k - 1) == 0:
            return max_of_halves(x, k)
        batch, length, channels = x.shape
        y = x.view(batch, length // k, k, channels)
        out = y[:, :, 0]
        for i in range(1, k):
            out = torch.maximum(out, y[:, :, i])
        return out


class HeadLinear(nn.Module):
    """A head's single (collapsed) Linear layer, computed as W @ x^T: for
    1024 inputs and 10 outputs this is faster than F.linear's x @ W^T (a
    wide, short weight matrix; docs/performance.md).  Returns a transposed
    view [B, out]."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.register_buffer("weight", weight.contiguous())        # [out, in]
        self.register_buffer("bias", bias.reshape(-1, 1).contiguous())  # [out, 1]

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, self.weight, x.t()).t()


class StatsPoolNLC(nn.Module):
    """architecture.StatsPool on [B, L, C] features: statistics over the length.
    The standard deviation comes from E[x^2] - E[x]^2 (torch.std's two
    passes took about half the head's time; the features are ReLU outputs
    of order 1, so the cancellation is harmless: tests compare with the
    training graph to 1e-5), the maximum from max_of_halves when L is a
    power of 2."""

    def forward(self, x: Tensor) -> Tensor:
        batch, length, channels = x.shape
        mean = x.mean(1)
        var = (x * x).mean(1) - mean * mean
        if length & (length - 1) == 0:
            peak = max_of_halves(x, length).reshape(batch, channels)
        else:
            peak = x.amax(1)
        return torch.cat([mean, peak, var.clamp_min(0.0).sqrt()], dim=1)


class FlattenNLC(nn.Module):
    """Flatten of [B, L, C] features; the next Linear's columns are permuted
    at export so that it sees the paper's channel-major order."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.size(0), -1)


def _is_conv_block(layer):
    return (isinstance(layer, nn.Sequential) and len(layer) == 3 and isinstance(layer[0], nn.Conv1d)
            and isinstance(layer[1], nn.BatchNorm1d) and isinstance(layer[2], nn.ReLU))


def _segment_to_nlc(seq: nn.Sequential, channels: int, from_frames: bool):
    """Rewrite a backbone segment for [B, L, C] features, BatchNorm and the
    input gain folded.  Returns (segment, channels at its end)."""
    layers = []
    gain = 1.0
    seq = list(seq)
    i = 0
    while i < len(seq):
        layer = seq[i]
        if isinstance(layer, InputGain):
            gain *= layer.gain  # folded into the next convolution's weights
        elif _is_conv_block(layer):
            weight, bias = _fold_bn(layer[0], layer[1], gain)
            pool = 2 if i + 1 < len(seq) and _pool_size(seq[i + 1]) == 2 else 1
            layers.append(ConvReLU(weight, bias, pool, from_frames))
            i += pool - 1  # the fused pool
            channels, gain, from_frames = weight.shape[0], 1.0, False
        elif _pool_size(layer) and not from_frames:
            layers.append(MaxPoolNLC(_pool_size(layer)))
        else:
            raise ValueError(f"cannot rewrite layer {layer} for inference")
        i += 1
    if gain != 1.0:
        raise ValueError("an input gain must be followed by a convolution")
    return nn.Sequential(*layers), channels


def _head_to_nlc(head: nn.Sequential, channels: int) -> nn.Sequential:
    """Rewrite a head for [B, L, C] features: the paper's (pool, flatten, one
    Linear: see _collapse_linear_chains) or the conv head (pool, conv block,
    per-channel statistics, Linear-ReLU-Linear)."""
    layers = []
    flat = None  # None: still [B, L, C]; "nlc": flattened [B, L*C]; "stats": [B, 3C]
    for layer in head:
        if _pool_size(layer) and flat is None:
            layers.append(MaxPoolNLC(_pool_size(layer)))
        elif _is_conv_block(layer) and flat is None:
            weight, bias = _fold_bn(layer[0], layer[1], 1.0)
            layers.append(ConvReLU(weight, bias))
            channels = weight.shape[0]
        elif isinstance(layer, StatsPool) and flat is None:
            layers.append(StatsPoolNLC())
            flat = "stats"
        elif isinstance(layer, nn.Flatten) and flat is None:
            layers.append(FlattenNLC())
            flat = "nlc"
        elif isinstance(layer, nn.Linear) and flat == "nlc":
            # Columns in channel-major order (c * L + l) -> length-major (l * C + c).
            out_features, in_features = layer.weight.shape
            length = in_features // channels
            weight = (layer.weight.detach().view(out_features, channels, length)
                      .permute(0, 2, 1).reshape(out_features, in_features))
            layers.append(HeadLinear(weight, layer.bias.detach()))
            flat = "done"  # one Linear after a flatten: the paper's head ends here
        elif isinstance(layer, nn.Linear) and flat == "stats":
            layers.append(HeadLinear(layer.weight.detach(), layer.bias.detach()))
        elif isinstance(layer, nn.ReLU) and flat == "stats":
            layers.append(nn.ReLU())
        elif isinstance(layer, nn.Dropout):
            continue  # identity at inference
        else:
            raise ValueError(f"cannot rewrite head layer {layer} for inference")
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


#: Weights smaller than this are zeroed at export.  A product of such a weight
#: with an activation adds less than 1e-17 to a sum of normal terms, far
#: below float32's resolution, so no output changes beyond rounding.
NEGLIGIBLE_WEIGHT = 1e-20


def zero_negligible_weights(module):
    """Zero every weight and buffer smaller than NEGLIGIBLE_WEIGHT in magnitude.
    Weight decay drives the weights of unused filters towards zero: below
    float32's smallest normal number (about 1.2e-38) they are subnormal, and
    just above it (training flushes subnormals) their products with
    activations are; on x86 every operation on a subnormal number takes many
    times longer, so a long-trained model ran markedly slower
    (docs/default-model/README.md)."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point():
                tensor.masked_fill_(tensor.abs() < NEGLIGIBLE_WEIGHT, 0.0)


def for_inference(model):
    """A folded, eval-mode copy of ``model`` for export (the original is untouched)."""
    folded = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        blocks = list(folded.blocks)
        for block, next_block in zip(blocks[:-1], blocks[1:]):
            _share_pool(block, next_block)
        channels = BACKBONE_LAYERS[0][2]  # I and Q
        for i, block in enumerate(blocks):
            block.segment, channels = _segment_to_nlc(block.segment, channels, from_frames=i == 0)
            block.head = _head_to_nlc(_collapse_linear_chains(block.head), channels)
        zero_negligible_weights(folded)
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded

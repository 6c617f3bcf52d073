"""Which conv blocks a pruned backbone keeps: the segment-wise method of Lu et
al. (arXiv 2406.07929, ../shared/reference/layer-pruning.md) and the
baselines it is compared with.

1. every conv block's output on a sample of frames (conv_block_outputs);
2. the similarity of every pair of those outputs: linear CKA, or the cosine
   variant (similarity_matrix);
3. Fisher's optimal segmentation of the prunable layers into K consecutive
   segments of alike layers (fisher_segments);
4. a training-free importance of each layer: SynFlow (synflow_scores), or a
   gradient norm on labelled frames (gradnorm_scores);
5. the best-scoring layer(s) of each segment are kept (segment_choice).

The baselines (keep the first layers, drop at random, drop the globally
lowest-scoring) drop layers in their own order until the backbone's MACs
fit a budget (drop_until): the comparison is at equal MACs.  Fine-tuning
and the report are training.prune's.
"""
import copy
import math

import numpy as np
import torch
from torch import nn

from .architecture import LAYER_NAMES, PAPER_STEM_CHANNELS, PRUNABLE_LAYERS, EarlyExitNet, InputGain, ModelConfig
from .compute_costs import exit_costs

SIMILARITIES = ("cka", "cosine")
SCORES = ("synflow", "gradnorm")


# ------------------------------------------------------------ representations
def _conv_blocks(model):
    """[(name, conv block module)] of ``model``'s backbone, in order."""
    layers = [layer for block in model.blocks for layer in block.segment if not isinstance(layer, InputGain)]
    return [(name, layer) for name, (_, kind, *_), layer in zip(model.config.layers, model.config.backbone, layers)
            if kind == "conv"]


@torch.no_grad()
def conv_block_outputs(model: EarlyExitNet, frames: torch.Tensor, batch=512):
    """{conv block name: its outputs [N, C * L] (float64)} on normalised
    ``frames`` [N, 2, L], the model in eval mode."""
    model = model.eval()
    outputs = {name: [] for name, _ in _conv_blocks(model)}
    hooks = [layer.register_forward_hook(lambda _m, _i, out, name=name: outputs[name].append(out.flatten(1).double()))
             for name, layer in _conv_blocks(model)]
    try:
        for start in range(0, len(frames), batch):
            x = frames[start:start + batch]
            for block in model.blocks:
                x = block.segment(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts) for name, parts in outputs.items()}


# ------------------------------------------------------------------ similarity
def centered_gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix of the rows of x [N, D] (one row per frame) with centred features."""
    x = x.double()
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centered kernel alignment of two representations of the same
    N frames ([N, D1], [N, D2]; widths may differ): 1 for the same
    representation, unchanged by an orthogonal transform or a scaling of either."""
    return _cka_of_grams(centered_gram(x), centered_gram(y))


def _cka_of_grams(k: torch.Tensor, l: torch.Tensor) -> float:
    return float((k * l).sum() / torch.sqrt((k * k).sum() * (l * l).sum()))


def cosine_gram(x: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of frames' features (rows of x)."""
    x = x.double()
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return x @ x.T


def cosine_similarity(x: torch.Tensor, y: torch.Tensor) -> float:
    """The cosine variant: how alike two layers see the frames, as the cosine
    between their frame-by-frame cosine-similarity matrices (widths may
    differ; unchanged by an orthogonal transform or a scaling).  Unlike CKA
    the features are not centred."""
    return _cka_of_grams(cosine_gram(x), cosine_gram(y))


def similarity_matrix(outputs, measure="cka"):
    """(names, [L, L] array) of ``measure`` (SIMILARITIES) between every pair of
    the representations ``outputs`` ({name: [N, D]}, in layer order)."""
    if measure not in SIMILARITIES:
        raise ValueError(f"unknown similarity {measure!r}; use one of {', '.join(SIMILARITIES)}")
    gram = centered_gram if measure == "cka" else cosine_gram
    names = list(outputs)
    grams = [gram(outputs[name]) for name in names]
    matrix = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            matrix[i, j] = matrix[j, i] = _cka_of_grams(grams[i], grams[j])
    return names, matrix


# ---------------------------------------------------------------- segmentation
def segment_cost(similarity, start, end):
    """Within-segment dissimilarity of layers start..end (inclusive): the sum of
    1 - s over its pairs divided by its size, Fisher's within-group sum of
    squares with 1 - s in place of a squared distance."""
    block = np.asarray(similarity)[start:end + 1, start:end + 1]
    size = end - start + 1
    return float((1.0 - block)[np.triu_indices(size, 1)].sum() / size)


def fisher_segments(similarity, k):
    """Fisher's optimal segmentation: the split of layers 0..L-1 into ``k``
    consecutive segments with the least total segment_cost, by dynamic
    programming over the split points.  Returns [(first, last)] per segment."""
    similarity = np.asarray(similarity, dtype=np.float64)
    n = len(similarity)
    if not 1 <= k <= n:
        raise ValueError(f"cannot split {n} layers into {k} segments (1 to {n})")
    cost = [[segment_cost(similarity, i, j) if j >= i else math.inf for j in range(n)] for i in range(n)]
    # best[m][j]: least cost of layers 0..j in m + 1 segments; cut[m][j]: first layer of the last one.
    best = [[math.inf] * n for _ in range(k)]
    cut = [[0] * n for _ in range(k)]
    for j in range(n):
        best[0][j] = cost[0][j]
    for m in range(1, k):
        for j in range(m, n):
            for first in range(m, j + 1):
                value = best[m - 1][first - 1] + cost[first][j]
                if value < best[m][j] - 1e-12:
                    best[m][j], cut[m][j] = value, first
    segments = []
    end = n - 1
    for m in range(k - 1, -1, -1):
        first = cut[m][end] if m else 0
        segments.append((first, end))
        end = first - 1
    return segments[::-1]


# ---------------------------------------------------------------------- scores
def synflow_parameter_scores(module: nn.Module, input_shape, forward=None):
    """SynFlow (Tanaka et al. 2020), training-free: on a float64 eval-mode copy
    of ``module`` with every parameter replaced by its absolute value and
    BatchNorm reduced to its positive affine map (|gamma| x / sigma + |beta|),
    R is the sum of the outputs for an all-ones input of ``input_shape``;
    a parameter's score is |theta * dR/dtheta|.  Returns (the copy,
    {parameter: scores tensor}) keyed by the copy's parameters.
    ``forward(copy, x)`` runs the copy (default: copy(x))."""
    net = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.running_mean.zero_()
            for p in layer.parameters(recurse=False):
                p.abs_()
    net.zero_grad()
    ones = torch.ones(*input_shape, dtype=torch.float64)
    out = forward(net, ones) if forward else net(ones)
    out.sum().backward()
    return net, {p: (p * p.grad).abs().detach() for p in net.parameters() if p.grad is not None}


def synflow_scores(model: EarlyExitNet):
    """SynFlow importance of each conv block of the backbone (its classifier
    gives R; early-exit heads take no part): the sum of its conv's and
    BatchNorm's parameter scores (synflow_parameter_scores)."""
    def backbone_logits(net, x):
        for block in net.blocks:
            x = block.segment(x)
        return net.blocks[-1].head(x)

    net, scores = synflow_parameter_scores(model, (1, 2, model.config.frame_len), backbone_logits)
    return {name: float(sum(scores[p].sum() for p in layer.parameters())) for name, layer in _conv_blocks(net)}


def gradnorm_scores(model: EarlyExitNet, frames: torch.Tensor, labels: torch.Tensor, batch=500):
    """Gradient-norm importance of each conv block (SGLP): the norm of the
    gradient of the backbone's cross-entropy on labelled frames with respect to
    the block's parameters, the model in eval mode."""
    net = copy.deepcopy(model).eval()
    net.zero_grad()
    for start in range(0, len(frames), batch):
        x = frames[start:start + batch]
        for block in net.blocks:
            x = block.segment(x)
        loss = nn.functional.cross_entropy(net.blocks[-1].head(x), labels[start:start + batch], reduction="sum")
        (loss / len(frames)).backward()
    return {name: float(torch.sqrt(sum((p.grad ** 2).sum() for p in layer.parameters())))
            for name, layer in _conv_blocks(net)}


# ------------------------------------------------------------------ choices
def kept_layers(dropped):
    """The paper's layers without the conv blocks ``dropped``."""
    bad = [name for name in dropped if name not in PRUNABLE_LAYERS]
    if bad:
        raise ValueError(f"cannot leave out {', '.join(bad)}; prunable: {', '.join(PRUNABLE_LAYERS)}")
    return tuple(name for name in LAYER_NAMES if name not in set(dropped))


def backbone_macs(layers, num_classes=10, frame_len=128, stem_channels=PAPER_STEM_CHANNELS):
    """Multiply-accumulates of the backbone made of ``layers`` with a
    ``stem_channels`` wide conv1, its classifier included."""
    return exit_costs(EarlyExitNet(ModelConfig(exits=(), num_classes=num_classes, frame_len=frame_len,
                                               layers=layers, stem_channels=stem_channels)))[1]


def segment_choice(segments, names, scores, per_segment=1):
    """Names of the ``per_segment`` best-scoring layers of each segment (in
    backbone order); ``names`` are the segmented layers, ``scores`` {name: score}."""
    keep = []
    for first, last in segments:
        members = names[first:last + 1]
        keep += sorted(members, key=lambda name: -scores[name])[:per_segment]
    return tuple(name for name in names if name in keep)


def drop_until(order, budget, macs_of):
    """Drop the layers of ``order`` one by one, in that order, until
    ``macs_of(dropped)`` fits ``budget``; returns the dropped layers.  A
    drop can add MACs (the classifier reads a wider last layer), so it goes
    on to the end if need be and keeps the cheapest prefix seen."""
    dropped = []
    best = (macs_of(()), ())
    for name in order:
        dropped.append(name)
        macs = macs_of(tuple(dropped))
        if macs < best[0]:
            best = (macs, tuple(dropped))
        if macs <= budget:
            return tuple(dropped)
    return best[1]


def baseline_orders(scores, random_seeds):
    """{baseline name: order in which it drops the prunable layers}: the
    first-k baseline from the end, random drops per seed, and the globally
    lowest-scoring first."""
    orders = {"first-k": tuple(reversed(PRUNABLE_LAYERS))}
    for seed in random_seeds:
        rng = np.random.default_rng(seed)
        orders[f"random-{seed}"] = tuple(PRUNABLE_LAYERS[i] for i in rng.permutation(len(PRUNABLE_LAYERS)))
    orders["lowest-score"] = tuple(sorted(PRUNABLE_LAYERS, key=lambda name: scores[name]))
    return orders

"""The paper's 1D-CNN backbone with early-exit heads at any list of points.

The backbone (docs/dataset-and-network.md) is a flat sequence of named
layers.  An early exit is placed *after* one of them; the network is cut there
into segments, and each segment is paired with the head that reads its output:

    segment 0 -> head 0 (first early exit)
    segment 1 -> head 1 ...
    last segment -> the backbone's own classifier (the final exit)

The same module serves training (``exit_logits``: every head on the whole
batch) and inference (``forward``: batched early exit, TorchScript-able, with
the exit rule of inference/: each row's exit depends on that row only).  What a network costs is in
compute_costs, moving weights between networks in checkpoint.
"""
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..inference.exit_rule import class_probabilities, entropy10, leaves, leaves_per_row

#: Backbone layers in order: (name, kind, in_channels, out_channels).
BACKBONE_LAYERS = (
    ("conv1", "conv", 2, 64),
    ("pool1", "pool", 64, 64),
    ("conv2", "conv", 64, 64),
    ("pool2", "pool", 64, 64),
    ("conv3", "conv", 64, 64),
    ("conv4", "conv", 64, 32),
    ("conv5", "conv", 32, 32),
    ("conv6", "conv", 32, 16),
    ("pool3", "pool", 16, 16),
)
LAYER_NAMES = tuple(name for name, *_ in BACKBONE_LAYERS)
#: Layers a pruned backbone may leave out (training.prune): every conv block
#: but conv1.  conv1 is the stem, the one layer that reads I and Q (the
#: inference graph convolves the frames first, and the pruning papers keep
#: the stem too); the pools stay, they set the lengths every head is sized for.
PRUNABLE_LAYERS = tuple(name for name, kind, *_ in BACKBONE_LAYERS if kind == "conv")[1:]


def check_layers(layers):
    """``layers`` as a tuple if it is a backbone the network can be built
    from: paper layer names in backbone order, every pool and conv1 among
    them; a ValueError otherwise."""
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if unknown:
        raise ValueError(f"unknown backbone layer(s) {', '.join(map(str, unknown))}; "
                         f"use names from {', '.join(LAYER_NAMES)}")
    if [LAYER_NAMES.index(name) for name in layers] != sorted({LAYER_NAMES.index(name) for name in layers}):
        raise ValueError(f"backbone layers {', '.join(layers)} must be distinct and in backbone order")
    missing = [name for name in LAYER_NAMES if name not in PRUNABLE_LAYERS and name not in layers]
    if missing:
        raise ValueError(f"backbone layers must include {', '.join(missing)} "
                         f"(only {', '.join(PRUNABLE_LAYERS)} can be left out)")
    return layers


#: conv1's output channels in the paper.
PAPER_STEM_CHANNELS = BACKBONE_LAYERS[0][3]


def check_stem_channels(stem_channels):
    """``stem_channels`` as an int if it is a usable width for conv1."""
    if not isinstance(stem_channels, (int, float)) or isinstance(stem_channels, bool) \
            or not float(stem_channels).is_integer() or not 1 <= stem_channels <= 1024:
        raise ValueError(f"stem_channels must be a whole number from 1 to 1024, got {stem_channels!r}")
    return int(stem_channels)


def backbone_layers(layers=LAYER_NAMES, stem_channels=PAPER_STEM_CHANNELS):
    """(name, kind, in_channels, out_channels) of the backbone made of the
    paper layers ``layers`` (check_layers), in order, with conv1 (the stem)
    ``stem_channels`` wide.

    Why the stem's width is a setting: conv1 reads patches of 2 channels x 3
    taps, six numbers, and the paper gives it 64 filters; its 64 x L output
    and the pool and V0 head that read it run memory-bound on a CPU, so a
    frame that leaves at V0 pays mostly for the stem's width
    (docs/pruning.md, "Where an exit pays").

    Where a left-out conv changed the width, the next kept conv takes the
    width that reaches it as its in-channels and keeps its own out-channels
    (so does the classifier: it flattens whatever the last layer gives).
    Why not a 1x1 projection: it would add a layer, memory-bound on a CPU,
    to a network made shorter for speed, and it too starts untrained; this
    way only the widened conv's weights start afresh (checkpoint.transfer_weights
    with reshaped=True), every other kept layer keeps its trained weights."""
    kept = set(check_layers(layers))
    stem_channels = check_stem_channels(stem_channels)
    spec = []
    channels = BACKBONE_LAYERS[0][2]  # I and Q
    for name, kind, _, cout in BACKBONE_LAYERS:
        if name not in kept:
            continue
        if name == "conv1":
            cout = stem_channels
        cout = cout if kind == "conv" else channels
        spec.append((name, kind, channels, cout))
        channels = cout
    return tuple(spec)

#: The paper's single-exit versions: where their early exit branches off.
PAPER_VERSIONS = {"V0": "pool1", "V1": "conv2", "V2": "conv3", "V3": "conv5"}

#: Features every early-exit head sees after its pooling (docs/dataset-and-network.md).
HEAD_FEATURES = 1024
#: The batched early exit gathers the rows that go on only when at least this
#: share of the rows in flight has left; below it the few answered rows ride
#: along and are ignored: copying a row's cached features costs about this
#: fraction of running it through the next segment (docs/performance.md).
MIN_SHARE_TO_GATHER = 1.0 / 16
#: An exit head runs on the gathered rows that may leave there only once at
#: least this share of the rows in flight has the exit off; below it the head
#: runs on every row, and the closed rows' own rule (thresholds -inf, give-up
#: inf) keeps them in: gathering a row's features costs a quarter to a third of running
#: the head on it (docs/head_gather_cost.py, at V0 and V1), and a
#: batch of the SNR table's bins often has a few rows with an exit off.
MIN_SHARE_CLOSED_TO_GATHER = 1.0 / 4
#: Hidden sizes of an early-exit head and of the backbone's classifier.
HEAD_HIDDEN = (64, 32)
BACKBONE_HIDDEN = (256, 64)
#: Exit head kinds: the paper's (pool to 1024 features, three Linear layers)
#: or "conv", ours (see conv_exit_head).
EXIT_HEADS = ("paper", "conv")
#: The conv head: positions after its pooling, its convolution's channels,
#: its hidden Linear width.
CONV_HEAD_LENGTH = 16
CONV_HEAD_CHANNELS = 16
CONV_HEAD_HIDDEN = 64


def resolve_exit(name, layers=LAYER_NAMES):
    """Layer name of an exit given as a layer name or a paper version (V0..V3),
    in the backbone made of ``layers`` (any layer but the last)."""
    layer = PAPER_VERSIONS.get(name, name)
    if layer not in layers or layer == layers[-1]:
        versions = [v for v, at in PAPER_VERSIONS.items() if at in layers[:-1]]
        raise ValueError(
            f"unknown exit point {name!r}; use one of {', '.join(versions)} "
            f"or a layer name from {', '.join(layers[:-1])}")
    return layer


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network (stored in every checkpoint)."""

    #: Early exits, by layer name or paper version; the final exit is implicit.
    exits: Tuple[str, ...] = ("V1",)
    num_classes: int = 10
    frame_len: int = 128
    dropout: float = 0.5
    #: Kind of every early-exit head (EXIT_HEADS); the final exit is the paper's classifier.
    exit_head: str = "paper"
    #: Backbone layers kept, in order: the paper's (LAYER_NAMES) or a pruned
    #: subset (check_layers; widths bridged as backbone_layers says).
    layers: Tuple[str, ...] = LAYER_NAMES
    #: conv1's output channels (backbone_layers says why this is a setting).
    stem_channels: int = PAPER_STEM_CHANNELS

    def __post_init__(self):
        self.exits = tuple(self.exits)
        self.layers = check_layers(self.layers)
        self.stem_channels = check_stem_channels(self.stem_channels)
        if self.exit_head not in EXIT_HEADS:
            raise ValueError(f"unknown exit head {self.exit_head!r}; use one of {', '.join(EXIT_HEADS)}")
        layers = [resolve_exit(e, self.layers) for e in self.exits]
        positions = [self.layers.index(layer) for layer in layers]
        if positions != sorted(set(positions)):
            raise ValueError(f"exits {self.exits} must be distinct and in backbone order")
        if self.frame_len % 8 or self.frame_len < 8:
            raise ValueError(f"frame_len must be a positive multiple of 8, got {self.frame_len}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")

    @property
    def exit_layers(self):
        return tuple(resolve_exit(e, self.layers) for e in self.exits)

    @property
    def backbone(self):
        """(name, kind, in_channels, out_channels) of each kept layer (backbone_layers)."""
        return backbone_layers(self.layers, self.stem_channels)

    @property
    def pruned(self):
        return self.layers != LAYER_NAMES

    @property
    def exit_names(self):
        """Display names: the paper's V-names where they apply, then 'final'."""
        inverse = {layer: v for v, layer in PAPER_VERSIONS.items()}
        return tuple(inverse.get(layer, layer) for layer in self.exit_layers) + ("final",)

    @property
    def num_exits(self):
        return len(self.exits) + 1

    @property
    def cuts(self):
        """Index in ``layers`` of the last layer of each block, the final one included."""
        return tuple(self.layers.index(layer) for layer in self.exit_layers) + (len(self.layers) - 1,)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


class InputGain(nn.Module):
    """Multiplies the input by a constant (not a parameter).

    L1-normalised frames have sample magnitudes around 1/L, so conv1's outputs
    are ~1e-3 while Adam moves its bias by about lr per step: with lr >= 1e-3
    BatchNorm's running mean could not follow and eval-mode accuracy collapsed
    far below train-mode accuracy on the same frames.
    Scaling by L brings the mean magnitude to 1; exported models fold it into
    conv1's weights.
    """

    def __init__(self, gain: float):
        super().__init__()
        self.gain = float(gain)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gain

    def extra_repr(self):
        return f"gain={self.gain}"


def conv_block(cin, cout):
    """Conv1d(k=3, same padding) + BatchNorm1d + ReLU, as in the paper's code."""
    return nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1), nn.BatchNorm1d(cout), nn.ReLU())


def _mlp(sizes, dropout):
    """Linear layers with dropout between them and no activation (paper's code)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
    return layers


def shape_after(layer_index, frame_len, backbone=BACKBONE_LAYERS):
    """(channels, length) of the output of layer ``layer_index`` of ``backbone``
    (the paper's, or a ModelConfig.backbone)."""
    length = frame_len
    channels = 2
    for name, kind, _, cout in backbone[: layer_index + 1]:
        channels = cout
        if kind == "pool":
            length //= 2
    return channels, length


def exit_head(channels, length, num_classes, dropout):
    """The paper's exit head: pool to HEAD_FEATURES, then 1024-64-32-C."""
    pool = max(1, channels * length // HEAD_FEATURES)
    if length % pool:
        raise ValueError(f"cannot pool {channels}x{length} features evenly for an exit head")
    features = channels * (length // pool)
    layers = [nn.MaxPool1d(pool)] if pool > 1 else []
    layers += [nn.Flatten()] + _mlp((features,) + HEAD_HIDDEN + (num_classes,), dropout)
    return nn.Sequential(*layers)


class StatsPool(nn.Module):
    """Mean, maximum and standard deviation of each channel over the length:
    [B, C, L] -> [B, 3C] (in that order)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.mean(2), x.amax(2), x.std(2, correction=0)], dim=1)


def conv_exit_head(channels, length, num_classes, dropout, conv_channels=CONV_HEAD_CHANNELS,
                   positions=CONV_HEAD_LENGTH):
    """Our exit head: MaxPool to ``positions`` positions, one Conv1d(k=3) +
    BatchNorm + ReLU to ``conv_channels``, per-channel mean/max/std over the
    positions, then Linear-ReLU-Linear (other sizes: docs/exit_head_study.py).

    Why: the paper's head is affine after a max-pool (its Linear layers have
    no activation between them), so at V0 it sees conv1's 3-tap filters
    only; one convolution and a non-linearity, for fewer MACs than the
    paper's head, let an early exit tell apart what those filters cannot
    (the study: docs/exit_head_study.py, docs/default-model-6/README.md).
    """
    pool = max(1, length // positions)
    if length % pool:
        raise ValueError(f"cannot pool {channels}x{length} features evenly for a conv exit head")
    layers = [nn.MaxPool1d(pool)] if pool > 1 else []
    layers += [conv_block(channels, conv_channels), StatsPool(),
               nn.Linear(3 * conv_channels, CONV_HEAD_HIDDEN), nn.ReLU(), nn.Dropout(dropout),
               nn.Linear(CONV_HEAD_HIDDEN, num_classes)]
    return nn.Sequential(*layers)


def backbone_head(channels, length, num_classes, dropout):
    """The backbone's classifier: flatten, then 256-256-64-C (for 2x128 frames)."""
    features = channels * length
    return nn.Sequential(nn.Flatten(), *_mlp((features,) + BACKBONE_HIDDEN + (num_classes,), dropout))


EXIT_HEAD_BUILDERS = {"paper": exit_head, "conv": conv_exit_head}


class ExitBlock(nn.Module):
    """A backbone segment and the head that classifies from its output."""

    def __init__(self, segment: nn.Module, head: nn.Module):
        super().__init__()
        self.segment = segment
        self.head = head

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        features = self.segment(x)
        return features, self.head(features)


class EarlyExitNet(nn.Module):
    """Backbone with early-exit heads; ``forward`` is the batched early exit."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.num_exits = config.num_exits
        self.min_share_to_gather = MIN_SHARE_TO_GATHER
        self.min_share_closed_to_gather = MIN_SHARE_CLOSED_TO_GATHER
        blocks = []
        start = 0
        cuts = config.cuts
        backbone = config.backbone
        for i, cut in enumerate(cuts):
            layers = [self._make_layer(spec) for spec in backbone[start:cut + 1]]
            if i == 0:
                layers.insert(0, InputGain(config.frame_len))
            segment = nn.Sequential(*layers)
            channels, length = shape_after(cut, config.frame_len, backbone)
            final = i == len(cuts) - 1
            make_head = backbone_head if final else EXIT_HEAD_BUILDERS[config.exit_head]
            blocks.append(ExitBlock(segment, make_head(channels, length, config.num_classes, config.dropout)))
            start = cut + 1
        self.blocks = nn.ModuleList(blocks)

    @staticmethod
    def _make_layer(spec):
        _, kind, cin, cout = spec
        return conv_block(cin, cout) if kind == "conv" else nn.MaxPool1d(2)

    # -- training -----------------------------------------------------------
    @torch.jit.export
    def exit_logits(self, x: Tensor) -> List[Tensor]:
        """Logits of every exit for the whole batch (training and analysis)."""
        outputs: List[Tensor] = []
        for block in self.blocks:
            x, logits = block(x)
            outputs.append(logits)
        return outputs

    # -- inference ----------------------------------------------------------
    @torch.jit.export
    def backbone(self, x: Tensor) -> Tensor:
        """Class probabilities of the backbone alone: no early-exit head runs."""
        k = 0
        for block in self.blocks:
            if k == self.num_exits - 1:
                x = block.head(block.segment(x))
            else:
                x = block.segment(x)
            k += 1
        return class_probabilities(x)

    def forward(self, x: Tensor, thresholds: Tensor, give_up: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Batched early exit.

        x: [B, 2, L] normalised frames.  The same rule for every row:
        thresholds [K-1] (one entropy bound per early exit) or [K-1, C] (per
        exit and predicted class), give_up [K-1].  Each row its own rule
        (the SNR-conditioned table, inference.snr_table): thresholds
        [B, K-1, C], give_up [B, K-1].  Every row still in flight runs the
        next segment from its cached features; a row leaves at the first
        exit whose entropy E satisfies E <= threshold (confident, the
        paper's rule) or E >= give_up (so unsure that the deeper layers are
        not expected to help: low-SNR frames, the paper's suggested
        extension; +inf disables it), or at the final exit.  Which rows
        leave depends on each row alone, never on the others in the batch.

        At each exit: decide which rows leave (_leaving), write their
        outputs (_record), and gather the rows that go on
        (_gather_in_flight).  Returns per row the class probabilities [B, C],
        the exit index [B] and the entropy [B].
        """
        batch = x.size(0)
        probs = torch.zeros(batch, self.num_classes, dtype=x.dtype, device=x.device)
        exits = torch.full([batch], -1, dtype=torch.long, device=x.device)
        entropy = torch.zeros(batch, dtype=x.dtype, device=x.device)
        rows = torch.arange(batch, device=x.device)    # output row of each row of x
        answered = torch.zeros(batch, dtype=torch.bool, device=x.device)  # rows of x that already left
        n_answered = 0
        k = 0
        for block in self.blocks:
            if rows.numel() > n_answered:
                x = block.segment(x)
                t_k, g_k = self._exit_settings(k, thresholds, give_up, rows, batch)
                n_closed, closed = self._closed_rows(k, t_k, g_k, rows.numel())
                if n_closed < rows.numel():  # else the exit is off for every row in flight: its head does not run
                    if n_closed < self.min_share_closed_to_gather * rows.numel():
                        # the head runs on every row; a closed row's rule (thresholds
                        # -inf, give-up inf) lets no entropy out, so it needs no mask
                        p = class_probabilities(block.head(x))
                        e = entropy10(p)
                    else:  # the head runs on the rows that may leave; the others get NaN, which leaves nowhere
                        open_rows = torch.nonzero(~closed).squeeze(1)
                        p_open = class_probabilities(block.head(x.index_select(0, open_rows)))
                        p = torch.zeros(rows.numel(), self.num_classes, dtype=x.dtype, device=x.device)
                        p.index_copy_(0, open_rows, p_open)
                        e = torch.full([rows.numel()], float("nan"), dtype=x.dtype, device=x.device)
                        e.index_copy_(0, open_rows, entropy10(p_open))
                    take = self._leaving(p, e, k, t_k, g_k, answered, n_answered)
                    probs, entropy, answered, n_answered = self._record(
                        probs, exits, entropy, p, e, take, k, rows, answered, n_answered)
                    x, rows, answered, n_answered = self._gather_in_flight(x, rows, answered, n_answered)
            k += 1
        return probs, exits, entropy

    def _exit_settings(self, k: int, thresholds: Tensor, give_up: Tensor, rows: Tensor,
                       batch: int) -> Tuple[Tensor, Tensor]:
        """The rule of exit k for the rows in flight, looked up once per
        exit: the shared threshold(s) [] or [C] and give-up value [], or
        with per-row settings each row's [n, C] and [n] (by its place in the
        batch, ``rows``; no lookup while every row of the batch is still in
        flight, in order).  The final exit has no rule: empty tensors."""
        if k == self.num_exits - 1:
            return thresholds[:0], give_up[:0]
        if thresholds.dim() == 3:
            t = thresholds.select(1, k)
            g = give_up.select(1, k)
            if rows.numel() < batch:
                t = t.index_select(0, rows)
                g = g.index_select(0, rows)
            return t, g
        return thresholds[k], give_up[k]

    def _closed_rows(self, k: int, t: Tensor, g: Tensor, n_rows: int) -> Tuple[int, Tensor]:
        """How many of the ``n_rows`` rows in flight have exit k off (its rule
        ``t``, ``g`` from _exit_settings), and which (a mask; empty when the
        count is 0 or all rows).  An exit is off for a row when its thresholds
        there are all negative (inference.model_file.EXIT_OFF, -inf) and its
        give-up value is inf: no entropy (>= 0) can take the row out, so the
        head need not run for it; the result is the same as with the head run."""
        none = torch.zeros(0, dtype=torch.bool, device=t.device)
        if k == self.num_exits - 1:
            return 0, none
        if t.dim() == 2:  # per row
            closed = (t.amax(dim=1) < 0) & (g == float("inf"))
            n = int(closed.sum())
            return n, (closed if 0 < n < n_rows else none)
        if bool(t.max() < 0) and bool(g == float("inf")):
            return n_rows, none
        return 0, none

    def _leaving(self, p: Tensor, e: Tensor, k: int, t: Tensor, g: Tensor,
                 answered: Tensor, n_answered: int) -> Tensor:
        """Rows in flight that leave exit k: every row not yet answered at the
        final exit, else the exit rule's (``t``, ``g`` from _exit_settings)."""
        if k == self.num_exits - 1:
            return ~answered
        if t.dim() == 2:
            take = leaves_per_row(p, e, t, g)
        else:
            take = leaves(p, e, t, g)
        if n_answered > 0:
            take = take & ~answered
        return take

    def _record(self, probs: Tensor, exits: Tensor, entropy: Tensor, p: Tensor, e: Tensor, take: Tensor,
                k: int, rows: Tensor, answered: Tensor,
                n_answered: int) -> Tuple[Tensor, Tensor, Tensor, int]:
        """Write the outputs of the rows that leave exit k (``exits`` in place);
        returns (probs, entropy, answered, n_answered)."""
        n_flight = rows.numel()
        n_take = int(take.sum()) if take.numel() > 0 else 0
        if n_take == n_flight and n_flight == probs.size(0):  # the whole batch leaves here, in order
            exits.fill_(k)
            return p, e, answered, n_take
        if n_take == n_flight:  # every row in flight leaves: no gather needed
            probs.index_copy_(0, rows, p)
            exits.index_fill_(0, rows, k)
            entropy.index_copy_(0, rows, e)
            return probs, entropy, answered, n_take
        if n_take > 0:
            # index_select/index_copy_ with explicit indices: cheaper than
            # boolean-mask indexing, which finds the indices again for every
            # tensor it touches.
            out = torch.nonzero(take).squeeze(1)
            leaving = rows.index_select(0, out)
            probs.index_copy_(0, leaving, p.index_select(0, out))
            exits.index_fill_(0, leaving, k)
            entropy.index_copy_(0, leaving, e.index_select(0, out))
            return probs, entropy, answered | take, n_answered + n_take
        return probs, entropy, answered, n_answered

    def _gather_in_flight(self, x: Tensor, rows: Tensor, answered: Tensor,
                          n_answered: int) -> Tuple[Tensor, Tensor, Tensor, int]:
        """Drop the answered rows from the features once MIN_SHARE_TO_GATHER of
        those in flight has left; below that the few answered rows ride along
        and their later outputs are ignored."""
        n_flight = rows.numel()
        if n_answered > 0 and n_answered < n_flight and n_answered >= self.min_share_to_gather * n_flight:
            keep = torch.nonzero(~answered).squeeze(1)
            return x.index_select(0, keep), rows.index_select(0, keep), answered.index_select(0, keep), 0
        return x, rows, answered, n_answered

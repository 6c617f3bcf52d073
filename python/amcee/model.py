"""The paper's 1D-CNN backbone with early-exit heads at any list of points.

The backbone (docs/dataset-and-network.md) is a flat sequence of named
layers.  An early exit is placed *after* one of them; the network is cut there
into segments, and each segment is paired with the head that reads its output:

    segment 0 -> head 0 (first early exit)
    segment 1 -> head 1 ...
    last segment -> the backbone's own classifier (the final exit)

The same module serves training (``exit_logits``: every head on the whole
batch) and inference (``forward``: batched early exit, TorchScript-able).
"""
import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

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

#: The paper's single-exit versions: where their early exit branches off.
PAPER_VERSIONS = {"V0": "pool1", "V1": "conv2", "V2": "conv3", "V3": "conv5"}

#: Features every early-exit head sees after its pooling (docs/dataset-and-network.md).
HEAD_FEATURES = 1024
#: The batched early exit gathers the rows that go on only when at least this
#: share of the rows in flight has left; below it the few answered rows ride
#: along and are ignored.  Measured on this CPU: copying a row's cached
#: features costs about 1/16 of running it through the next segment.
MIN_SHARE_TO_GATHER = 1.0 / 16
#: Exit gating: when a batch has at least 2 x PROBE_ROWS rows in flight at an
#: early exit with a minimum share set, its head first runs on PROBE_ROWS of
#: them (every n // PROBE_ROWS-th row), and on all of them only if at least
#: that share of the probed rows leaves (see EarlyExitNet.forward).
PROBE_ROWS = 32
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


def resolve_exit(name):
    """Layer name of an exit given as a layer name or a paper version (V0..V3)."""
    layer = PAPER_VERSIONS.get(name, name)
    if layer not in LAYER_NAMES or layer == LAYER_NAMES[-1]:
        raise ValueError(
            f"unknown exit point {name!r}; use one of {', '.join(PAPER_VERSIONS)} "
            f"or a layer name from {', '.join(LAYER_NAMES[:-1])}")
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

    def __post_init__(self):
        self.exits = tuple(self.exits)
        if self.exit_head not in EXIT_HEADS:
            raise ValueError(f"unknown exit head {self.exit_head!r}; use one of {', '.join(EXIT_HEADS)}")
        layers = [resolve_exit(e) for e in self.exits]
        positions = [LAYER_NAMES.index(layer) for layer in layers]
        if positions != sorted(set(positions)):
            raise ValueError(f"exits {self.exits} must be distinct and in backbone order")
        if self.frame_len % 8 or self.frame_len < 8:
            raise ValueError(f"frame_len must be a positive multiple of 8, got {self.frame_len}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")

    @property
    def exit_layers(self):
        return tuple(resolve_exit(e) for e in self.exits)

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
        """Index in BACKBONE_LAYERS of the last layer of each block, the final one included."""
        return tuple(LAYER_NAMES.index(layer) for layer in self.exit_layers) + (len(LAYER_NAMES) - 1,)

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
    (measured: 0.14 in eval mode vs 0.56 in train mode on the same frames).
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


def _shape_after(layer_index, frame_len):
    """(channels, length) of the backbone's output after layer ``layer_index``."""
    length = frame_len
    channels = 2
    for name, kind, _, cout in BACKBONE_LAYERS[: layer_index + 1]:
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
    only.  Trained on the frozen conv1 of a V0+V1 model, this head (53k MACs,
    less than the paper head's 68k) raised V0's test accuracy from 48 % to
    56 %, at 20 dB BPSK 75 -> 100 % and 8PSK 2 -> 56 %, and the 20 dB compute
    ceiling at 0.4 pp loss from 1.55x to 2.04x (docs/exit_head_study.py,
    docs/default-model/README.md).
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


def class_probabilities(logits: Tensor) -> Tensor:
    """softmax(logits, dim=1), computed over dim 0 of the transpose: for 10
    classes softmax over the last dimension took 46 us per batch of 256
    here, over the first 5 us (the heads' W @ x^T already leaves the
    transpose contiguous)."""
    return torch.softmax(logits.t(), dim=0).t()


def entropy10(p: Tensor) -> Tensor:
    """Entropy -sum p log10 p per row (0 log 0 = 0), as in the paper."""
    return -torch.xlogy(p, p).sum(dim=1) / math.log(10.0)


def leaves(p: Tensor, e: Tensor, threshold: Tensor, give_up: Tensor) -> Tensor:
    """Rows that leave an early exit: entropy E <= threshold (the paper's
    rule) or E >= give_up.  ``threshold`` is one number for the exit, or one
    per class [C]: then each row is held to the threshold of the class it is
    predicted as (class thresholds, calibrate.search_class_thresholds)."""
    if threshold.dim() > 0:
        threshold = threshold.index_select(0, p.argmax(1))
    return (e <= threshold) | (e >= give_up)


class EarlyExitNet(nn.Module):
    """Backbone with early-exit heads; ``forward`` is the batched early exit."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.num_exits = config.num_exits
        self.min_share_to_gather = MIN_SHARE_TO_GATHER
        self.probe_rows = PROBE_ROWS
        blocks = []
        start = 0
        cuts = config.cuts
        for i, cut in enumerate(cuts):
            layers = [self._make_layer(j) for j in range(start, cut + 1)]
            if i == 0:
                layers.insert(0, InputGain(config.frame_len))
            segment = nn.Sequential(*layers)
            channels, length = _shape_after(cut, config.frame_len)
            final = i == len(cuts) - 1
            make_head = backbone_head if final else EXIT_HEAD_BUILDERS[config.exit_head]
            blocks.append(ExitBlock(segment, make_head(channels, length, config.num_classes, config.dropout)))
            start = cut + 1
        self.blocks = nn.ModuleList(blocks)

    @staticmethod
    def _make_layer(index):
        _, kind, cin, cout = BACKBONE_LAYERS[index]
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
    def forward_features(self) -> List[str]:
        """What this file's forward understands beyond the first exported
        format (export.LoadedModel reads it; older files lack the method)."""
        return ["exit_gating", "class_thresholds"]

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

    def forward(self, x: Tensor, thresholds: Tensor, give_up: Tensor,
                min_share: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Batched early exit.

        x: [B, 2, L] normalised frames; thresholds: [K-1] entropy bounds of
        the early exits, or [K-1, C] one per exit and predicted class;
        give_up: [K-1].  Every row still in flight runs the next
        segment from its cached features; a row leaves at the first exit whose
        entropy E satisfies E <= threshold (confident, the paper's rule) or
        E >= give_up (so unsure that the deeper layers are not expected to
        help: low-SNR frames, the paper's suggested extension; +inf disables
        it), or at the final exit.  The rows that go on are gathered once
        MIN_SHARE_TO_GATHER of those in flight has left (below that, the few
        answered rows ride along and their later outputs are ignored).

        min_share: optional [K-1] exit gating (a share above 1 skips the head
        without a probe).  An exit head costs time for
        every row it sees and saves time only for the rows that leave; when
        few leave (a stream at low SNR) it is a loss.  With min_share[k] > 0
        and at least 2 x probe_rows rows in flight, head k first runs on
        probe_rows rows spread evenly over the batch; only if at least
        min_share[k] of those leave does it run on every row.  Otherwise the
        probed rows that qualified leave and every other row goes on to the
        next exit without its entropy being looked at here.

        Returns per row the class probabilities [B, C], the exit index [B]
        and the entropy [B].
        """
        batch = x.size(0)
        probs = torch.zeros(batch, self.num_classes, dtype=x.dtype, device=x.device)
        exits = torch.full([batch], -1, dtype=torch.long, device=x.device)
        entropy = torch.zeros(batch, dtype=x.dtype, device=x.device)
        rows = torch.arange(batch, device=x.device)    # output row of each row of x
        answered = torch.zeros(batch, dtype=torch.bool, device=x.device)  # rows of x that already left
        n_answered = 0
        k = 0
        last = self.num_exits - 1
        probe = self.probe_rows
        for block in self.blocks:
            if rows.numel() > n_answered:
                x = block.segment(x)
                n_flight = rows.numel()
                share = 0.0  # this exit's gating share; 0 = the head runs on every row
                if min_share is not None and k < last and n_flight >= 2 * probe:
                    share = float(min_share[k])
                gated = share > 0.0
                skip = False
                p = torch.empty(0)
                e = torch.empty(0)
                take = torch.empty(0, dtype=torch.bool)
                if share > 1.0:
                    # No probe can meet a share above 1: every row goes on
                    # without a head call (the engine's back-off, engine.py).
                    skip = True
                elif gated:
                    # The probe rows are spread over the batch, so that a batch
                    # whose first rows differ from the rest (a modulation or
                    # SNR change) is judged on all of it.
                    stride = n_flight // probe
                    end = probe * stride
                    probe_p = class_probabilities(block.head(x[0:end:stride]))
                    probe_e = entropy10(probe_p)
                    probe_take = leaves(probe_p, probe_e, thresholds[k], give_up[k])
                    live = probe
                    if n_answered > 0:
                        probe_answered = answered[0:end:stride]
                        probe_take = probe_take & ~probe_answered
                        live = probe - int(probe_answered.sum())
                    n_probe_take = int(probe_take.sum())
                    if n_probe_take < share * live:
                        # Not worth it for this batch: only probed rows may leave.
                        # (When none of them qualified, take stays empty: nothing leaves.)
                        skip = True
                        if n_probe_take > 0:
                            take = torch.zeros(n_flight, dtype=torch.bool, device=x.device)
                            p = torch.zeros(n_flight, self.num_classes, dtype=x.dtype, device=x.device)
                            e = torch.zeros(n_flight, dtype=x.dtype, device=x.device)
                            p[0:end:stride] = probe_p
                            e[0:end:stride] = probe_e
                            take[0:end:stride] = probe_take
                if not skip:
                    # (After a passed probe the head runs on every row, the
                    # probed ones again: cheaper than gathering the others.)
                    p = class_probabilities(block.head(x))
                    e = entropy10(p)
                    if k == last:
                        take = ~answered
                    else:
                        take = leaves(p, e, thresholds[k], give_up[k])
                        if n_answered > 0:
                            take = take & ~answered
                n_take = int(take.sum()) if take.numel() > 0 else 0
                if n_take == n_flight and n_flight == batch:  # the whole batch leaves here, in order
                    probs, entropy = p, e
                    exits.fill_(k)
                    n_answered = n_take
                elif n_take == n_flight:  # every row in flight leaves: no gather needed
                    probs.index_copy_(0, rows, p)
                    exits.index_fill_(0, rows, k)
                    entropy.index_copy_(0, rows, e)
                    n_answered = n_take
                elif n_take > 0:
                    # index_select/index_copy_ with explicit indices: cheaper
                    # than boolean-mask indexing, which finds the indices again
                    # for every tensor it touches.  (With a skipped head only
                    # the probed rows of p and e are filled, and only they can
                    # leave.)
                    out = torch.nonzero(take).squeeze(1)
                    leaving = rows.index_select(0, out)
                    probs.index_copy_(0, leaving, p.index_select(0, out))
                    exits.index_fill_(0, leaving, k)
                    entropy.index_copy_(0, leaving, e.index_select(0, out))
                    answered = answered | take
                    n_answered += n_take
                if n_answered > 0 and n_answered < n_flight and \
                        n_answered >= self.min_share_to_gather * n_flight:
                    keep = torch.nonzero(~answered).squeeze(1)
                    x = x.index_select(0, keep)
                    rows = rows.index_select(0, keep)
                    answered = answered.index_select(0, keep)
                    n_answered = 0
            k += 1
        return probs, exits, entropy


def portable_state(model: EarlyExitNet):
    """Weights keyed by backbone layer and exit rather than by block, e.g.
    'conv2.0.weight', 'head.conv2.paper.1.weight', 'head.final.1.weight':
    the same tensor has the same key whatever exits the model has."""
    state = {}
    start = 0
    for block, cut in zip(model.blocks, model.config.cuts):
        layers = [m for m in block.segment if not isinstance(m, InputGain)]
        for name, layer in zip(LAYER_NAMES[start:cut + 1], layers):
            for key, value in layer.state_dict().items():
                state[f"{name}.{key}"] = value
        final = cut == len(LAYER_NAMES) - 1
        head = "head.final" if final else f"head.{LAYER_NAMES[cut]}.{model.config.exit_head}"
        for key, value in block.head.state_dict().items():
            state[f"{head}.{key}"] = value
        start = cut + 1
    return state


def transfer_weights(source: EarlyExitNet, target: EarlyExitNet):
    """Copy every backbone layer and exit head ``target`` shares with ``source``
    (fine-tuning a model with other exits from a trained one).  Returns the
    sorted keys of target's portable state that were not in source."""
    src = portable_state(source)
    dst = portable_state(target)
    fresh = []
    with torch.no_grad():
        for key, value in dst.items():
            if key not in src:
                fresh.append(key)
            elif src[key].shape != value.shape:
                raise ValueError(f"cannot transfer {key}: shape {tuple(src[key].shape)} "
                                 f"in the source, {tuple(value.shape)} here (other classes or frame length?)")
            else:
                value.copy_(src[key])
    if len(fresh) == len(dst):
        raise ValueError("the source model shares no layer with this one")
    return sorted(fresh)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_split(model: EarlyExitNet, exit_index: int = 0):
    """(shared, exit head, rest of backbone) parameter counts for one early exit."""
    blocks = list(model.blocks)
    shared = sum(count_parameters(b.segment) for b in blocks[: exit_index + 1])
    head = count_parameters(blocks[exit_index].head)
    rest = sum(count_parameters(b.segment) for b in blocks[exit_index + 1:])
    rest += count_parameters(blocks[-1].head)
    return shared, head, rest


def layer_macs(frame_len=128):
    """Multiply-accumulates of each backbone layer for one frame (convs only)."""
    macs = {}
    for i, (name, kind, cin, cout) in enumerate(BACKBONE_LAYERS):
        _, length = _shape_after(i, frame_len)
        macs[name] = cin * cout * 3 * length if kind == "conv" else 0
    return macs


def head_macs(head: nn.Sequential, length: int) -> int:
    """Multiply-accumulates of a head's convolutions and Linear layers for one
    frame whose features have ``length`` positions where the head starts."""
    macs = 0
    for layer in head.modules():
        if isinstance(layer, nn.MaxPool1d):
            length //= layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        elif isinstance(layer, nn.Conv1d):
            macs += layer.in_channels * layer.out_channels * layer.kernel_size[0] * length
        elif isinstance(layer, nn.Linear):
            macs += layer.in_features * layer.out_features
    return macs


def exit_costs(model: EarlyExitNet):
    """MACs a frame costs when it leaves at each exit (heads on the way included),
    and the backbone alone's cost.  Convolutions and linear layers only, the
    accounting of docs/dataset-and-network.md."""
    per_layer = layer_macs(model.config.frame_len)
    costs = []
    spent = 0
    start = 0
    for block, cut in zip(model.blocks, model.config.cuts):
        spent += sum(per_layer[LAYER_NAMES[j]] for j in range(start, cut + 1))
        head = head_macs(block.head, _shape_after(cut, model.config.frame_len)[1])
        costs.append(spent + head)
        spent += head
        start = cut + 1
    backbone = sum(per_layer.values()) + head_macs(model.blocks[-1].head, 1)
    return costs, backbone


def compute_ceiling(exit_shares, costs, backbone_macs):
    """Speed-up over the backbone alone that exit shares allow by compute."""
    expected = sum(share * cost for share, cost in zip(exit_shares, costs))
    return backbone_macs / expected if expected > 0 else float("nan")


@dataclass
class ExportInfo:
    """Metadata that travels inside an exported model file."""

    classes: Tuple[str, ...]
    thresholds: Tuple[float, ...]
    model_version: str = "unversioned"
    normalization: str = "l1"
    training: dict = field(default_factory=dict)

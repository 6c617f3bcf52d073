"""What a network costs: parameters and multiply-accumulates per exit.

Convolutions and linear layers only, the accounting of
docs/dataset-and-network.md.  The compute ceiling (the speed-up over the
backbone alone that some exit shares allow) follows from the costs; with
measured seconds in place of MACs it is the time ceiling (training.time_costs).
"""
from torch import nn

from .architecture import LAYER_NAMES, PAPER_STEM_CHANNELS, EarlyExitNet, backbone_layers, shape_after


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


def layer_macs(frame_len=128, layers=LAYER_NAMES, stem_channels=PAPER_STEM_CHANNELS):
    """Multiply-accumulates of each layer of the backbone made of ``layers``
    (the paper's or a pruned one) with a ``stem_channels`` wide conv1, for
    one frame (convs only)."""
    macs = {}
    backbone = backbone_layers(layers, stem_channels)
    for i, (name, kind, cin, cout) in enumerate(backbone):
        _, length = shape_after(i, frame_len, backbone)
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
    config = model.config
    per_layer = layer_macs(config.frame_len, config.layers, config.stem_channels)
    costs = []
    spent = 0
    start = 0
    for block, cut in zip(model.blocks, config.cuts):
        spent += sum(per_layer[name] for name in config.layers[start:cut + 1])
        head = head_macs(block.head, shape_after(cut, config.frame_len, config.backbone)[1])
        costs.append(spent + head)
        spent += head
        start = cut + 1
    backbone = sum(per_layer.values()) + head_macs(model.blocks[-1].head, 1)
    return costs, backbone


def compute_ceiling(exit_shares, costs, backbone_macs):
    """Speed-up over the backbone alone that exit shares allow by compute."""
    expected = sum(share * cost for share, cost in zip(exit_shares, costs))
    return backbone_macs / expected if expected > 0 else float("nan")

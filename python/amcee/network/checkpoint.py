"""Self-describing training checkpoints (nanoGPT style), and moving weights
from one network into another with other exits.

A checkpoint is a dict of plain types and tensors: the model's weights and
config, the class list, the training config, the optimiser state, the epoch
and the best metric, so that any checkpoint can be rebuilt, resumed or
exported without knowing how it was made.  Loading uses
``torch.load(weights_only=True)``, which cannot execute code from the file.
"""
import os
import zipfile

import torch

from ..atomic import atomic_path
from ..inference.model_file import CHECKPOINT_FORMAT, MAX_CLASSES, MAX_FRAME_LEN, torch_file_kind
from .architecture import EarlyExitNet, InputGain, ModelConfig


def save_checkpoint(path, model, classes, **extra):
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        "classes": list(classes),
    }
    state.update(extra)
    with atomic_path(path) as tmp:  # never leave a half-written checkpoint behind
        torch.save(state, tmp)


class CheckpointError(ValueError):
    """A file given as a training checkpoint that is not one, or is damaged."""


def load_checkpoint(path, map_location="cpu"):
    """(model, checkpoint dict); a CheckpointError for anything else."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if torch_file_kind(path) == "torchscript":
        raise CheckpointError(f"{path} is an exported model, not a training checkpoint (the best.pt or last.pt "
                         "of an `amcee train` run)")
    try:
        with zipfile.ZipFile(path) as archive:  # torch does not check the CRCs: a flipped bit loads
            bad = archive.testzip()
        if bad is not None:
            raise CheckpointError(f"member {bad} fails its CRC check")
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        text = str(exc).strip()
        raise CheckpointError(f"{path} is not a readable amcee checkpoint "
                         f"({text.splitlines()[0] if text else type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an amcee checkpoint (format {CHECKPOINT_FORMAT} expected)")
    config = state.get("model_config")
    if not isinstance(config, dict) or not all(
            type(config.get(key)) is int and low <= config[key] <= high
            for key, low, high in (("frame_len", 8, MAX_FRAME_LEN), ("num_classes", 2, MAX_CLASSES))):
        raise CheckpointError(f"{path}: checkpoint has no valid model_config (frame_len up to {MAX_FRAME_LEN}, "
                         f"num_classes up to {MAX_CLASSES})")
    try:
        model = EarlyExitNet(ModelConfig.from_dict(config))
        model.load_state_dict(state["model_state"])
    except Exception as exc:  # missing keys, wrong types or shapes: torch raises many kinds
        text = str(exc).strip()
        raise CheckpointError(f"{path}: checkpoint does not hold a consistent network "
                         f"({type(exc).__name__}: {text.splitlines()[0][:200] if text else ''})") from None
    return model, state


def portable_state(model: EarlyExitNet):
    """Weights keyed by backbone layer and exit rather than by block, e.g.
    'conv2.0.weight', 'head.conv2.paper.1.weight', 'head.final.1.weight':
    the same tensor has the same key whatever exits the model has, and a
    pruned backbone's layers keep their paper names."""
    state = {}
    start = 0
    names = model.config.layers
    for block, cut in zip(model.blocks, model.config.cuts):
        layers = [m for m in block.segment if not isinstance(m, InputGain)]
        for name, layer in zip(names[start:cut + 1], layers):
            for key, value in layer.state_dict().items():
                state[f"{name}.{key}"] = value
        final = cut == len(names) - 1
        head = "head.final" if final else f"head.{names[cut]}.{model.config.exit_head}"
        for key, value in block.head.state_dict().items():
            state[f"{head}.{key}"] = value
        start = cut + 1
    return state


def transfer_weights(source: EarlyExitNet, target: EarlyExitNet, reshaped=False):
    """Copy every backbone layer and exit head ``target`` shares with ``source``
    (fine-tuning a model with other exits from a trained one).  Returns the
    sorted keys of target's portable state that were not in source.

    A tensor whose shape differs is an error (other classes or frame length),
    unless ``reshaped``: then it keeps target's initial values and counts as
    not in source (a pruned backbone from its unpruned source: the conv
    after a left-out layer, or the classifier, sees another width)."""
    src = portable_state(source)
    dst = portable_state(target)
    fresh = []
    with torch.no_grad():
        for key, value in dst.items():
            if key not in src or (reshaped and src[key].shape != value.shape):
                fresh.append(key)
            elif src[key].shape != value.shape:
                raise ValueError(f"cannot transfer {key}: shape {tuple(src[key].shape)} "
                                 f"in the source, {tuple(value.shape)} here (other classes, frame length or stem width?)")
            else:
                value.copy_(src[key])
    if len(fresh) == len(dst):
        raise ValueError("the source model shares no layer with this one")
    return sorted(fresh)


def load_network(path):
    """(network in eval mode, class names) from a training checkpoint or an
    exported model file (rebuilt by network_from_model_file: its backbone and
    classifier exactly, its early-exit heads not)."""
    if os.path.isfile(path) and torch_file_kind(path) == "torchscript":
        model, classes = network_from_model_file(path)
    else:
        model, state = load_checkpoint(path)
        classes = state["classes"]
    return model.eval(), list(classes)


def network_from_model_file(path):
    """(network, classes) rebuilt from an exported model file: its backbone
    convolutions (BatchNorm folded, so each BatchNorm starts as the identity;
    conv1 without the input gain) and its classifier, exact to float
    rounding.  The classifier was collapsed into one Linear map (the paper's
    has no activation between its layers): it comes back as the first
    Linear's leading rows, passed on by identities, the same function.  The
    early-exit heads are not rebuilt (their weights start afresh): this is
    for pruning a network whose training checkpoint is gone."""
    from ..inference.model_file import load_model
    from . import model_code  # noqa: F401 (registers the code check the loader runs)

    loaded = load_model(path)
    net = EarlyExitNet(ModelConfig.from_dict(loaded.meta["config"])).eval()
    folded = [layer for block in loaded.module.blocks.children() for layer in block.segment.children()
              if layer.original_name == "ConvReLU"]
    convs = [layer for block in net.blocks for layer in block.segment
             if isinstance(layer, torch.nn.Sequential) and isinstance(layer[0], torch.nn.Conv1d)]
    if len(folded) != len(convs):
        raise ValueError(f"{path}: {len(folded)} convolutions in the file, {len(convs)} in its config")
    head = list(list(loaded.module.blocks.children())[-1].head.children())
    if [layer.original_name for layer in head] != ["FlattenNLC", "HeadLinear"]:
        raise ValueError(f"{path}: its classifier is not the paper's collapsed one")
    with torch.no_grad():
        for i, (source, (conv, bn, _)) in enumerate(zip(folded, convs)):
            gain = net.config.frame_len if i == 0 else 1.0  # InputGain, folded into conv1 at export
            conv.weight.copy_(source.weight.squeeze(2) / gain)
            conv.bias.copy_(source.bias)
            bn.weight.fill_(1.0)
            bn.bias.zero_()
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        weight, bias = head[1].weight, head[1].bias.reshape(-1)       # [C, L * channels], length-major columns
        outputs, features = weight.shape
        channels = convs[-1][0].out_channels
        weight = weight.view(outputs, features // channels, channels).permute(0, 2, 1).reshape(outputs, features)
        linears = [layer for layer in net.blocks[-1].head if isinstance(layer, torch.nn.Linear)]
        for k, linear in enumerate(linears):
            linear.weight.zero_()
            linear.bias.zero_()
            if k == 0:
                linear.weight[:outputs] = weight
                linear.bias[:outputs] = bias
            else:
                linear.weight[:outputs, :outputs] = torch.eye(outputs)
    return net, list(loaded.classes)

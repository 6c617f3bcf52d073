"""Self-describing training checkpoints (nanoGPT style).

A checkpoint is a dict of plain types and tensors: the model's weights and
config, the class list, the training config, the optimiser state, the epoch
and the best metric, so that any checkpoint can be rebuilt, resumed or
exported without knowing how it was made.  Loading uses
``torch.load(weights_only=True)``, which cannot execute code from the file.
"""
import os

import torch

from .model import EarlyExitNet, ModelConfig

CHECKPOINT_FORMAT = "amcee-checkpoint-1"


def save_checkpoint(path, model, classes, **extra):
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        "classes": list(classes),
    }
    state.update(extra)
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(path, map_location="cpu"):
    """(model, checkpoint dict); a clear ValueError for anything else."""
    from .export import torch_file_kind

    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if torch_file_kind(path) == "torchscript":
        raise ValueError(f"{path} is an exported model, not a training checkpoint (the best.pt or last.pt "
                         "of an `amcee train` run)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable amcee checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an amcee checkpoint (format {CHECKPOINT_FORMAT} expected)")
    model = EarlyExitNet(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model_state"])
    return model, state

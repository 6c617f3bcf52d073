"""Exporting a trained network as a model file, and rewriting a file's
metadata: the one writer of model files (inference.model_file reads them
and describes their format).

What is scripted is an inference copy of the network (inference_graph);
its metadata is checked by the reader's own validators before it is written.
"""
import datetime
import json
import os

import torch

from ..atomic import atomic_path
from ..inference.model_file import (FORMAT, FORMAT_VERSION, METADATA_FILE, SNR_TABLE_KEY, check_model_version,
                                    give_up_to_json, load_model, thresholds_to_json, validate_give_up,
                                    validate_thresholds, weights_digest)
from ..inference.snr_table import validate_snr_table
from .compute_costs import exit_costs
from .inference_graph import zero_negligible_weights
from .model_code import script_for_export


def build_metadata(model, classes, thresholds, model_version="unversioned", extra=None, give_up=None,
                   description=""):
    config = model.config
    classes = [str(c) for c in classes]
    if len(classes) != config.num_classes:
        raise ValueError(f"{len(classes)} class labels for a model with {config.num_classes} outputs")
    thresholds = validate_thresholds(thresholds, config.num_exits, config.num_classes)
    give_up = validate_give_up(give_up, config.num_exits)
    costs, backbone_macs = exit_costs(model)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_version": check_model_version(model_version),
        "description": str(description or ""),
        "classes": classes,
        "frame_len": config.frame_len,
        "input_layout": "float32 [B, 2, L]: row 0 = I, row 1 = Q",
        "normalization": "l1",
        "num_exits": config.num_exits,
        "exit_names": list(config.exit_names),
        "thresholds": thresholds_to_json(thresholds),
        "give_up": give_up_to_json(give_up),
        SNR_TABLE_KEY: None,
        "entropy_base": 10,
        "exit_macs": costs,
        "backbone_macs": backbone_macs,
        "config": config.to_dict(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }
    meta.update(extra or {})
    return meta


def export_model(model, path, classes, thresholds, model_version="unversioned", extra=None, give_up=None,
                 description=""):
    """Script ``model`` (an EarlyExitNet) and write it with its metadata to ``path``.

    What is scripted is an inference copy (inference_graph.for_inference:
    BatchNorm folded, [B, L, C] layout, collapsed heads); ``model`` itself
    is not changed.
    """
    meta = build_metadata(model, classes, thresholds, model_version, extra, give_up, description=description)
    scripted = script_for_export(model)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_model_file(scripted, meta, path)
    return meta


def rewrite_metadata(path, updates, out_path=None):
    """Rewrite a model file with some metadata fields changed (e.g. thresholds,
    the SNR table).  A file whose model_version also holds the description
    gets the two apart."""
    loaded = load_model(path)
    meta = _updated_metadata(loaded, updates)
    write_model_file(loaded.module, meta, out_path or path)
    return meta


def _updated_metadata(loaded, updates):
    """A loaded model's metadata with ``updates``, checked as the loader
    checks it; a file whose model_version also holds the description gets
    the two apart."""
    meta = dict(loaded.meta)
    meta["model_version"], meta["description"] = loaded.version, loaded.description
    meta.update(updates)
    meta["thresholds"] = thresholds_to_json(loaded.check_thresholds(meta["thresholds"]))
    meta["give_up"] = give_up_to_json(validate_give_up(meta.get("give_up"), loaded.num_exits))
    table = validate_snr_table(meta.get(SNR_TABLE_KEY), loaded.num_exits, len(loaded.classes))
    meta[SNR_TABLE_KEY] = None if table is None else table.to_json()
    return meta


def upgrade_model_file(path, out_path, model_version=None, description=None):
    """Write a model file exported by an earlier version of this package
    again with this version's code: the same weights and metadata
    (thresholds, calibration, SNR table).  Reading the old file runs its
    code (load_model), so its author must be trusted (--trust-model-code).
    The new file's every exit must give the old one's outputs."""
    from .architecture import EarlyExitNet, ModelConfig

    loaded = load_model(path)
    updates = {"model_version": model_version, "description": description}
    meta = _updated_metadata(loaded, {k: v for k, v in updates.items() if v is not None})
    check_model_version(meta["model_version"])
    with torch.random.fork_rng(devices=[]):
        scripted = script_for_export(EarlyExitNet(ModelConfig.from_dict(meta["config"])).eval())
    scripted.load_state_dict(loaded.module.state_dict())
    zero_negligible_weights(scripted)  # as every export does (an earlier version may not have)
    frames = torch.randn(16, 2, meta["frame_len"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for old, new in zip(loaded.module.exit_logits(frames), scripted.exit_logits(frames)):
            if not torch.allclose(old, new, rtol=1e-4, atol=1e-5):
                raise ValueError(f"{path}: this version's network gives other outputs for its weights: "
                                 "export it again from its training checkpoint")
    write_model_file(scripted, meta, out_path)
    return meta


def write_model_file(module, meta, path):
    """Write a scripted module with ``meta`` as its metadata to ``path``,
    atomically: a killed process or a full disk leaves the earlier file whole.
    The metadata gets the digest of the weights written (the loader checks it)
    and this package's format version."""
    meta = dict(meta, format_version=FORMAT_VERSION, weights_sha256=weights_digest(module))
    with atomic_path(path) as tmp:
        module.save(tmp, _extra_files={METADATA_FILE: json.dumps(meta, indent=1)})
    return meta

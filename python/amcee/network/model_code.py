"""The TorchScript code this package's exporter writes for a network config:
the reference against which inference.model_file checks a model file before
torch runs any of its code.

A model file carries its forward as TorchScript source (``code/`` entries of
the zip); torch compiles and runs it while loading, and TorchScript can read
and write files.  The code of an exported model depends only on the network
config (exits, head kind, classes, frame length) and on this package's
network code, never on the weights: the reference is an untrained network of
the file's config, scripted as export_model scripts it and saved to memory.
It is built at run time from the code in use, so it follows every change of
the network without a stored list.

inference.model_file may not import this layer (a flowgraph loads no network
code): this module registers itself there when imported; a process that has
not imported it (a flowgraph) runs ``python -m gnuradio.amcee.network.model_code``
once per config, which reads the config as JSON on stdin and prints the code.
"""
import io
import json
import sys
import warnings
import zipfile

import torch

from ..inference import model_file
from .architecture import EarlyExitNet, ModelConfig
from .inference_graph import for_inference


def script_for_export(model):
    """What export_model writes of an EarlyExitNet: its inference copy
    (inference_graph.for_inference), scripted.  One function for the
    exporter and the reference, so that the two cannot drift apart."""
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript; it is still the one format that
        # keeps data-dependent early-exit control flow and loads without Python.
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(for_inference(model))


def archive_code(data):
    """{entry name without the archive's top folder: text} of the TorchScript
    source entries of a torch.jit.save archive given as bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name.split("/", 1)[1]: archive.read(name).decode("utf-8")
                for name in archive.namelist() if model_file.is_code_entry(name)}


def reference_code(config):
    """The code entries (archive_code) that export_model writes for a network
    of ``config`` (ModelConfig.to_dict()); raises ValueError for a config no
    network can have."""
    if not isinstance(config, dict):
        raise ValueError(f"network config must be a JSON object, got {type(config).__name__}")
    try:
        # Its random weights do not matter; the caller's random stream does
        # (loading a model must not change what torch.randn gives next).
        with torch.random.fork_rng(devices=[]):
            net = EarlyExitNet(ModelConfig.from_dict(config)).eval()
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a network config ({exc})") from None
    buffer = io.BytesIO()
    torch.jit.save(script_for_export(net), buffer)
    return archive_code(buffer.getvalue())


model_file.register_code_reference(reference_code)


def _main():
    """Config JSON on stdin -> {"code": {...}} or {"error": "..."} on stdout."""
    try:
        result = {"code": reference_code(json.load(sys.stdin))}
    except ValueError as exc:
        result = {"error": str(exc)}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    _main()

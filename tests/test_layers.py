"""The package's layers, and the one direction of its imports.

Every module of python/amcee belongs to a layer: the modules at the package
root (labels, frames, timing, version and the compiled amcee_python) are the
ground, each subpackage is a layer of its own.  A module may import its own
layer and the layers under it (LAYERS), so that a flowgraph, which loads the
blocks, never loads training code, and no two modules import each other.
The imports are read from the sources (ast), those inside functions too.
"""
import ast
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = "gnuradio.amcee"
SOURCES = ROOT / "python" / "amcee"

#: layer -> the layers its modules may import (its own included).
#: ground <- inference <- network; data and inference <- blocks;
#: network, inference, data <- training <- tools <- cli.
LAYERS = {
    "ground": {"ground"},
    "inference": {"ground", "inference"},
    "network": {"ground", "inference", "network"},
    "data": {"ground", "data"},
    "blocks": {"ground", "inference", "data", "blocks"},
    "training": {"ground", "inference", "network", "data", "training"},
    "tools": {"ground", "inference", "network", "data", "blocks", "training", "tools"},
    "cli": {"ground", "inference", "network", "data", "blocks", "training", "tools", "cli"},
    # gnuradio.amcee itself: what `from gnuradio import amcee` offers, the blocks.
    "package": {"ground", "blocks"},
}
#: Layers a flowgraph that uses the blocks must not load.
TRAINING_SIDE = ("network", "training", "tools", "cli")
#: Libraries a layer does without: datasets are numpy and GNU Radio only.
NOT_IMPORTED = {"data": {"torch"}}
#: Modules of the package that are no .py file of it.
COMPILED = {f"{PACKAGE}.amcee_python"}


def _modules():
    """{dotted module name: path} of every Python module of the package."""
    modules = {}
    for path in SOURCES.rglob("*.py"):
        parts = list(path.relative_to(SOURCES).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([PACKAGE] + parts)] = path
    return modules


MODULES = _modules()


def layer(module):
    """The layer of a module of the package (by dotted name)."""
    parts = module.split(".")[2:]
    if not parts:
        return "package"
    if len(parts) == 1 and (module in COMPILED or MODULES[module].parent == SOURCES):
        return "ground"
    return parts[0]


def _resolve(module, node):
    """The modules of the package that an Import/ImportFrom node in ``module`` names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith(PACKAGE + ".")]
    if node.level:
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".")
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source != PACKAGE and not source.startswith(PACKAGE + "."):
        return []
    # `from . import x` names the module x; `from .x import name` names the module x.
    named = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES | dict.fromkeys(COMPILED)]
    return named or [source]


def imports():
    """{module: sorted modules of the package it imports, anywhere in its code}."""
    out = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(_resolve(module, node))
        out[module] = sorted(found - {module})
    return out


def test_every_module_is_in_a_layer():
    unknown = sorted({layer(m) for m in MODULES} - set(LAYERS))
    assert not unknown, f"folders of python/amcee without a place in LAYERS: {unknown}"


def test_every_import_names_an_existing_module():
    known = set(MODULES) | COMPILED
    missing = [f"{m} -> {target}" for m, targets in imports().items() for target in targets if target not in known]
    assert not missing, missing


def test_imports_run_down_the_layers_only():
    wrong = [f"{m} ({layer(m)}) -> {target} ({layer(target)})"
             for m, targets in imports().items() for target in targets
             if target in MODULES or target in COMPILED
             if layer(target) not in LAYERS[layer(m)]]
    assert not wrong, "imports against the layer rule:\n" + "\n".join(wrong)


def test_layers_do_without_what_they_must():
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{module} imports {name}" for name in names
                      if name.split(".")[0] in NOT_IMPORTED.get(layer(module), ())]
    assert not found, found


def test_no_import_circle():
    """No module imports itself through others (an import of a module also
    runs its packages' __init__.py, which import nothing but the public blocks)."""
    graph = imports()
    circles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in graph.get(module, ()):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_import_reader_sees_lazy_and_relative_imports():
    """The resolver finds imports inside functions and relative ones."""
    graph = imports()
    assert f"{PACKAGE}.tools.bench_block" in graph[f"{PACKAGE}.tools.bench"]  # inside a function
    assert f"{PACKAGE}.inference.malloc_tuning" in graph[f"{PACKAGE}.inference.engine"]  # from . import x
    assert f"{PACKAGE}.amcee_python" in graph[f"{PACKAGE}.blocks.classifier"]
    assert layer(f"{PACKAGE}.frames") == "ground" and layer(f"{PACKAGE}.data.synth.generate") == "data"
    assert "training" not in LAYERS["blocks"] and "network" not in LAYERS["inference"]


@pytest.mark.parametrize("statement", ["from gnuradio import amcee",
                                       "from gnuradio.amcee.inference.engine import EarlyExitEngine"])
def test_a_flowgraph_loads_no_training_code(statement):
    """What `from gnuradio import amcee` (or a program that uses only the
    engine) loads: no network, training, tools or cli module, and neither
    matplotlib nor tqdm from the package (torch itself imports tqdm)."""
    code = f"""
import sys

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("matplotlib", "tqdm"):
            frame = sys._getframe(1)  # the code that imports, past the import machinery
            while frame.f_code.co_filename.startswith("<frozen importlib"):
                frame = frame.f_back
            if frame.f_globals.get("__name__", "").startswith("{PACKAGE}"):
                print("IMPORTS", name, "FROM", frame.f_globals["__name__"])
        return None

sys.meta_path.insert(0, Watch())
{statement}
for name in sorted(sys.modules):
    if name.startswith("{PACKAGE}."):
        print("LOADED", name)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("LOADED")]
    assert f"{PACKAGE}.inference.engine" in loaded
    training_side = [m for m in loaded if m in MODULES and layer(m) in TRAINING_SIDE]
    assert not training_side, training_side
    assert "IMPORTS" not in result.stdout, result.stdout

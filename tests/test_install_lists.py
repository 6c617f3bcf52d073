"""CMake is the registry of installed files (GR_PYTHON_INSTALL): a module left
out of it works from the source tree, where the tests run, and fails only
once installed (exit_gating.py was missing, so an installed `amcee calibrate`
raised ModuleNotFoundError)."""
import re

import pytest


def _installed_files(cmake_text, destination_suffix):
    """Files of the GR_PYTHON_INSTALL(FILES ... DESTINATION ...<suffix>) blocks."""
    files = set()
    for body, dest in re.findall(r"GR_PYTHON_INSTALL\(\s*FILES(.*?)DESTINATION\s+(\S+)\s*\)", cmake_text, re.S):
        if dest.endswith(destination_suffix):
            files.update(body.split())
    return files


@pytest.mark.parametrize("folder, prefix, suffix", [("python/amcee", "", "gnuradio/amcee"),
                                                    ("python/amcee/cli", "cli/", "gnuradio/amcee/cli")])
def test_every_python_module_is_installed(repo_root, folder, prefix, suffix):
    cmake = (repo_root / "python" / "amcee" / "CMakeLists.txt").read_text()
    listed = _installed_files(cmake, suffix)
    sources = {prefix + p.name for p in (repo_root / folder).glob("*.py")}
    assert sources - listed == set(), "add these to python/amcee/CMakeLists.txt"
    assert listed - sources == set(), "listed in python/amcee/CMakeLists.txt but absent"

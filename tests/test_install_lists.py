"""CMake is the registry of installed files (GR_PYTHON_INSTALL): a module left
out of it works from the source tree, where the tests run, and fails only
once installed (a module of `amcee calibrate` was once missing from it, and
the installed command raised ModuleNotFoundError).  Each folder of python/amcee lists its own
modules in its own CMakeLists.txt, which its parent folder adds."""
import re

import pytest

from conftest import ROOT

SOURCES = ROOT / "python" / "amcee"
#: Every folder of the package that holds Python modules.
FOLDERS = sorted({p.parent for p in SOURCES.rglob("*.py")})


def _installed_files(cmake_text, destination):
    """Files of the GR_PYTHON_INSTALL(FILES ... DESTINATION <destination>) blocks."""
    files = set()
    for body, dest in re.findall(r"GR_PYTHON_INSTALL\(\s*FILES(.*?)DESTINATION\s+(\S+)\s*\)", cmake_text, re.S):
        if dest == destination:
            files.update(body.split())
    return files


def _name(folder):
    return str(folder.relative_to(ROOT))


@pytest.mark.parametrize("folder", FOLDERS, ids=_name)
def test_every_python_module_is_installed(folder):
    cmake = folder / "CMakeLists.txt"
    assert cmake.exists(), f"{_name(folder)} holds Python modules but no CMakeLists.txt to install them"
    inside = folder.relative_to(SOURCES).as_posix()
    destination = "${GR_PYTHON_DIR}/gnuradio/amcee" + ("" if inside == "." else "/" + inside)
    listed = _installed_files(cmake.read_text(), destination)
    sources = {p.name for p in folder.glob("*.py")}
    assert sources - listed == set(), f"add these to {_name(cmake)} (DESTINATION {destination})"
    assert listed - sources == set(), f"listed in {_name(cmake)} but absent"


@pytest.mark.parametrize("folder", [f for f in FOLDERS if f != SOURCES], ids=_name)
def test_every_folder_is_added_by_its_parent(folder):
    parent = (folder.parent / "CMakeLists.txt").read_text()
    assert re.search(rf"add_subdirectory\(\s*{re.escape(folder.name)}\s*\)", parent), \
        f"{_name(folder.parent / 'CMakeLists.txt')} does not add_subdirectory({folder.name})"

"""The version of gr-amcee: MAJOR.API.ABI.PATCH, as CMakeLists.txt's
VERSION_MAJOR/API/ABI/PATCH (tests/cli/test_cli.py keeps the two equal)."""

__version__ = "1.0.0.0"

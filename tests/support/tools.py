"""Command-line tools a test runs: found beside this interpreter (the venv) or on PATH.

A missing tool skips its test with the stated reason, except in CI, where it fails: CI must run
every check (`.ci/run` and `make test` install what they need).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def tool(name: str, install: str) -> str:
    """The path of `name`; `install` says where it comes from, for the skip or failure."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found:
        return found
    reason = f"{name} is not installed ({install})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run this check")
    pytest.skip(reason)

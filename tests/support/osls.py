"""The pinned deploy CLI (`npx osls`), run offline: packaging calls no AWS API, but the CLI wants
credentials and a region to start, so it gets placeholders and none of the caller's AWS settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
# The `packaged` fixture (tests/deploy/conftest.py): (stage, *params) -> (update template, folder).
Packaged = Callable[..., tuple[dict, Path]]
QUIET = {"SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off"}
CFN_LINT = str(Path(sys.executable).with_name("cfn-lint"))


def offline_env() -> dict[str, str]:
    """This process's environment without AWS_* settings, with placeholder credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_REGION=REGION, AWS_ACCESS_KEY_ID="offline", AWS_SECRET_ACCESS_KEY="offline")
    return env


def package_stage(stage: str, out: Path, *params: str) -> dict:
    """The update template `osls package` generates for `stage`, written to `out`."""
    subprocess.run(
        ["npx", "--no-install", "osls", "package", "--stage", stage, "--package", str(out),
         *(f"--param={p}" for p in params)],
        cwd=ROOT, env={**offline_env(), **QUIET}, check=True, capture_output=True, timeout=180,
    )
    return json.loads((out / "cloudformation-template-update-stack.json").read_text())


def cfn_lint(folder: Path) -> subprocess.CompletedProcess:
    """cfn-lint over the templates `osls package` wrote to `folder`, as `make cfn-lint` runs it:
    W3005 ignored (the framework's redundant DependsOn on every route), anything else counts."""
    files = sorted(str(p) for p in folder.glob("cloudformation-template-*.json"))
    return subprocess.run([CFN_LINT, "--ignore-checks", "W3005", "--", *files],
                          capture_output=True, text=True, check=False)

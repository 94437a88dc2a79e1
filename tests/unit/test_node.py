"""Without Node.js, `make test` says so up front, runs everything else and reports the deploy
checks as not run; in CI it stops instead (`tests/support/node.py`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def without_node(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment with a PATH on which no node or npm can be found."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return {**env, "PATH": str(tmp_path), **extra}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_without_node_the_up_front_check_says_so_in_one_line_and_lets_the_rest_run(tmp_path):
    result = run(["-m", "tests.support.node"], without_node(tmp_path))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "make test: Node.js 20.19+ with npm is not installed: the deploy checks (tests needing "
        "Node) will NOT RUN; everything else runs."]


def test_without_node_in_ci_the_up_front_check_stops_make_test(tmp_path):
    result = run(["-m", "tests.support.node"], without_node(tmp_path, CI="true"))
    assert result.returncode == 1
    assert "CI must run the deploy checks" in result.stderr


def test_with_node_the_check_is_silent(node):
    result = run(["-m", "tests.support.node"], {**os.environ, "CI": "true"})
    assert (result.returncode, result.stderr) == (0, "")


def test_without_node_deploy_checks_are_reported_as_not_run_or_fail_in_ci(tmp_path):
    # Only pytest and the suite's conftest take part in what is checked: no plugin is loaded
    # (hypothesis and schemathesis alone took 1.5 s of each run's 2 s start).
    selected = ["-m", "pytest", "-p", "no:cacheprovider", "-q",
                "tests/deploy/test_offline.py::test_offline_serves_the_api_and_cors_like_the_http_api"]
    bare = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    local = run(selected, without_node(tmp_path, **bare))
    assert local.returncode == 0, local.stdout
    assert "1 skipped" in local.stdout
    assert "deploy check NOT RUN: Node.js 20.19+ with npm is not installed" in local.stdout
    assert "1 deploy checks NOT RUN" in local.stdout

    in_ci = run(selected, without_node(tmp_path, CI="true", **bare))
    assert in_ci.returncode == 1, in_ci.stdout
    assert "CI must run the deploy checks" in in_ci.stdout

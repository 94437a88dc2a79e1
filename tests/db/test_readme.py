"""The shell blocks of the README and of every guide in docs/ run as written, twice in a row,
against `python -m cities serve` on the embedded database, so none drifts from the API again.

A block that is not meant to run here (installing things, starting the server itself, calling
AWS) says so on the line before it: `<!-- readme-test: not run (why) -->`, invisible on GitHub.
Such a block must not talk to the local API: that would be a drifting example hidden from this
test. (A deployed API's blocks, in docs/deploy.md, call `$URL` on AWS.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.db.test_embedded import data, serve, stop  # noqa: F401 (data: the fixture)
from tests.db.test_main import REPO

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                       reason="the blocks run against `make run`'s embedded database"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="the README's blocks use curl"),
]

BLOCK = re.compile(r"(?:<!-- readme-test: not run \((?P<why>[^)]+)\) -->\n[ ]*)?"
                   r"```sh\n(?P<body>.*?)```", re.DOTALL)
# A block that talks to the local API: it names it in a variable, or curls it.
LOCAL = r"(localhost|127\.0\.0\.1):5000"
THE_API = re.compile(rf"={LOCAL}|\bcurl\b[^\n]*\b{LOCAL}")
OK = {200, 201, 304}
# The README and the guides: wherever a curl session moves, its blocks are run.
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_blocks() -> tuple[list[str], list[tuple[str, str]]]:
    """(blocks to run, (reason, block) of those marked not run), over every document."""
    run, not_run = [], []
    for document in DOCUMENTS:
        for match in BLOCK.finditer(document.read_text()):
            if match["why"]:
                not_run.append((match["why"], match["body"]))
            else:
                run.append(match["body"])
    return run, not_run


def test_blocks_marked_not_run_never_talk_to_the_api():
    run, not_run = readme_blocks()
    assert len(run) >= 2 and not_run
    for why, body in not_run:
        assert not THE_API.search(body), f"marked not run ({why}) but talks to the API:\n{body}"


def test_the_blocks_to_run_are_the_local_apis_and_the_etag_session_among_them():
    run, _ = readme_blocks()
    assert all(THE_API.search(body) for body in run)
    assert any("If-Match" in body for body in run)  # docs/api.md's, moved out of the README


def test_every_readme_block_runs_twice_and_every_request_succeeds(tmp_path, data):  # noqa: F811
    run, _ = readme_blocks()
    proc, base = serve(tmp_path)
    shell_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    curls = 0  # at least one request each (a shell function may call one more than once)
    try:
        for body in run:
            script = body.replace("localhost:5000", base.removeprefix("http://"))
            for attempt in ("first", "second"):
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=shell_env,
                                      capture_output=True, text=True, timeout=120, check=False)
                assert done.returncode == 0, f"{attempt} run of\n{body}\n{done.stderr}"
            curls += 2 * len(re.findall(r"\bcurl\b", body))
    finally:
        output = stop(proc, signal.SIGINT)
    statuses = [json.loads(line.split(": ", 1)[1])["status"]
                for line in output.splitlines() if '{"event":"request"' in line]
    assert len(statuses) > curls, output  # and serve()'s /health
    assert set(statuses) <= OK, [s for s in statuses if s not in OK]

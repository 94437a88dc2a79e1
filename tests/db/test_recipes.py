"""docs/extending.md's recipes work as written: each one's code blocks are applied to a scratch
copy of the repository (tests/support/recipes.py), its migrations applied to a fresh database
by `python -m cities migrate`, and the API that copy serves is checked for what the recipe
promises (tests/support/recipe_checks.py): the sortable nullable field, the resource with its
range filter, the relation's 422 and 409. One database for all: the recipes build on each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import recipes

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "extending.md"
SECTIONS = ["Adding a field", "Adding a resource", "Relations"]

pytestmark = pytest.mark.skipif(shutil.which("git") is None,
                                reason="the scratch copy is of the files git tracks")


def run(copy: Path, *args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy), "DATABASE_URL": url}
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_every_code_block_of_the_guide_is_a_recipe_step():
    text = GUIDE.read_text()
    assert recipes.unmarked_blocks(text) == 0, "a python/sql block without a recipe comment"
    assert {step.section for step in recipes.steps(text)} == set(SECTIONS)


def test_each_recipe_applied_as_written_migrates_and_serves_what_it_promises(
        tmp_path, databases):
    copy = recipes.copy_repository(REPO, tmp_path / "copy")
    url = databases.create()
    steps = recipes.steps(GUIDE.read_text())
    for section in SECTIONS:
        for step in (s for s in steps if s.section == section):
            recipes.apply(copy, step)
        migrated = run(copy, "-m", "cities", "migrate", url=url)
        assert migrated.returncode == 0, f"{section}: migrate failed\n{migrated.stderr}"
        checked = run(copy, "-m", "tests.support.recipe_checks", url, section, url=url)
        assert checked.returncode == 0, f"{section}: {checked.stdout}\n{checked.stderr}"
        assert f"{section}: ok" in checked.stdout


def test_a_place_the_code_no_longer_has_is_an_error(tmp_path):
    (tmp_path / "m.py").write_text("X = f(\n    a=1,\n)\n")
    step = recipes.Step("s", "m.py", "replacing the line sorts=", "sorts=()\n")
    with pytest.raises(StopIteration):
        recipes.apply(tmp_path, step)
    recipes.apply(tmp_path, recipes.Step("s", "m.py", "at the end of the declaration", "b=2,\n"))
    assert (tmp_path / "m.py").read_text() == "X = f(\n    a=1,\n    b=2,\n)\n"

"""The text rules cost a cold start nothing: their regular expressions are compiled on first
use (compiling them took 15M of `import handler`'s instructions), and then behave the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cities.resources import validation

ROOT = Path(__file__).resolve().parents[2]
RULES = ("FORBIDDEN_CHARACTERS", "_LONE_SURROGATE", "_TRIM", "_REFUSED_CHARACTER",
         "_SEARCH_REFUSED_CHARACTER")

COLD_IMPORT = f"""
import re
compiled = set()
compile_ = re._compile
re._compile = lambda pattern, flags: compiled.add(pattern) or compile_(pattern, flags)
import handler
from cities.resources import validation
print(sum(getattr(validation, name).pattern in compiled for name in {RULES!r}))
"""


def test_importing_the_handler_compiles_none_of_the_text_rules(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", COLD_IMPORT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0"


def test_a_rule_compiled_on_first_use_applies_as_written() -> None:
    assert validation.clean_text("  Springfield\u200b ") == ("Springfield", None)
    assert validation.clean_text("\u202egnirpS")[0] is None
    assert validation.FORBIDDEN_CHARACTERS.search("a\x00b")
    assert not validation.FORBIDDEN_CHARACTERS.search("plain")

"""`.env.example` and docs/configuration.md's settings table, written from `config.SETTINGS`.

The settings table is the one home of each setting's name, range, default and meaning; these two
files are derived from it, and tests/unit/test_settings_docs.py fails when either drifts (a
setting added without regenerating, say). `make settings-docs` (`python -m
cities.ops.settings_docs --write`) rewrites both; `--markdown` and `--env-example` print one.
Never imported by the API: only this command and the test read it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from cities.ops.config import SETTINGS, Setting, _describe

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / ".env.example"
CONFIGURATION = REPO / "docs" / "configuration.md"
BEGIN = ("<!-- settings table: generated from cities/ops/config.py SETTINGS by "
         "`make settings-docs`; edit SETTINGS, not this table -->")
END = "<!-- end of the settings table -->"
_TABLE = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.DOTALL)

ENV_HEADER = """\
# Copy to .env for local runs (`make run`, `make migrate`); real environment variables win.
# On Lambda these come from serverless.yml / SSM Parameter Store instead: there is no .env there.
# Generated from cities/ops/config.py SETTINGS by `make settings-docs` (docs/configuration.md):
# edit SETTINGS, not this file. A blank value is unset: the setting's default. On/off settings
# take 1, true, yes, on / 0, false, no, off (any case); numbers are plain digits.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _when_invalid(setting: Setting) -> str:
    return (f"{setting.refuses} until fixed" if setting.refuses
            else "logged, and the default is used")


def markdown_table(settings: Iterable[Setting] = SETTINGS) -> str:
    """The table docs/configuration.md shows, between its markers."""
    rows = [BEGIN, "", "| variable | meaning | valid values | default | when out of range |",
            "|---|---|---|---|---|"]
    for s in settings:
        rows.append(f"| `{s.name}` | {_cell(s.doc)} | {_cell(s.kind.expected)} | "
                    f"{_cell(_describe(s.default))} | {_cell(_when_invalid(s))} |")
    return "\n".join([*rows, "", END])


def _comment(text: str, width: int = 98) -> list[str]:
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "#"
        line += " " + word
    return [*lines, line]


def env_example(settings: Iterable[Setting] = SETTINGS) -> str:
    """The whole of .env.example: each setting blank (its default), its meaning above it."""
    out = [ENV_HEADER.rstrip("\n")]
    for s in settings:
        words = (f"{s.doc[0].upper()}{s.doc[1:]}. Valid: {s.kind.expected}. "
                 f"Default: {_describe(s.default)}. Out of range: {_when_invalid(s)}.")
        out += ["", *_comment(words)]
        if s.example:
            out.append(f"# {s.name}={s.example}")
        out.append(f"{s.name}=")
    return "\n".join(out) + "\n"


def configuration_page(page: str, settings: Iterable[Setting] = SETTINGS) -> str:
    """docs/configuration.md with its table replaced by the one SETTINGS gives."""
    if not _TABLE.search(page):
        raise ValueError(f"{CONFIGURATION.name} has no settings table markers")
    return _TABLE.sub(lambda _: markdown_table(settings), page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cities.ops.settings_docs")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the settings table")
    what.add_argument("--env-example", action="store_true", help="print .env.example")
    what.add_argument("--write", action="store_true", help="rewrite both files")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table() + "\n")
    elif args.env_example:
        sys.stdout.write(env_example())
    else:
        ENV_EXAMPLE.write_text(env_example())
        CONFIGURATION.write_text(configuration_page(CONFIGURATION.read_text()))
        print(f"wrote {ENV_EXAMPLE.name} and docs/{CONFIGURATION.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

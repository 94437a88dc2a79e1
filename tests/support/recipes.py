"""docs/extending.md's recipes, applied as written to a scratch copy of the repository.

Each code block of a recipe follows a comment that says where it goes, invisible on GitHub:
`<!-- recipe: PATH | WHERE -->`, WHERE one of

- `new file`: the block is the file (`NNNN` in PATH: the next free migration number);
- `after the imports`: the block's lines go after the module's last top-level import;
- `at the end of NAME=(`: into that multi-line tuple, before its closing `),`;
- `replacing the line TEXT`: the line whose text (indentation aside) starts with TEXT;
- `at the end of the declaration`: before the `)` that closes the module's last call.

Blocks are written unindented where they go into code; they take the indentation of the place.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import NamedTuple

MARKER = re.compile(
    r"^(?P<indent>[ ]*)<!-- recipe: (?P<path>\S+) \| (?P<where>.+?) -->\n"
    r"[ ]*```(?P<lang>\w+)\n(?P<body>.*?)^[ ]*```", re.DOTALL | re.MULTILINE)
FENCE = re.compile(r"^[ ]*```(python|sql)\n", re.MULTILINE)


class Step(NamedTuple):
    section: str  # the `## ` heading the block is under
    path: str
    where: str
    body: str


def steps(markdown: str) -> list[Step]:
    """Every recipe block of a page, in order, with the section it belongs to."""
    found = []
    for match in MARKER.finditer(markdown):
        headings = re.findall(r"^## (.+)$", markdown[:match.start()], re.MULTILINE)
        found.append(Step(headings[-1] if headings else "", match["path"], match["where"],
                          textwrap.dedent(match["body"])))
    return found


def unmarked_blocks(markdown: str) -> int:
    """Python and SQL blocks that no recipe comment places (each would be untested)."""
    return len(FENCE.findall(markdown)) - len(MARKER.findall(markdown))


def copy_repository(repo: Path, target: Path) -> Path:
    """The files git tracks or would track in `repo` (as they are in the work tree), in
    `target`: the checkout a developer has, without .venv, .data or build output."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = repo / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _next_migration(root: Path, path: str) -> str:
    folder = root / Path(path).parent
    numbers = [int(p.name[:4]) for p in folder.glob("[0-9][0-9][0-9][0-9]_*.sql")]
    return path.replace("NNNN", f"{max(numbers, default=0) + 1:04d}")


def _indented(body: str, indent: str) -> list[str]:
    return [f"{indent}{line}" if line.strip() else "" for line in body.rstrip("\n").split("\n")]


def _indent_of(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def apply(root: Path, step: Step) -> Path:
    """Apply one block to the copy in `root`; the file it wrote. A place that cannot be found
    is an error naming it: the recipe no longer matches the code."""
    if step.where == "new file":
        path = root / _next_migration(root, step.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step.body)
        return path
    path = root / step.path
    lines = path.read_text().split("\n")
    where = step.where
    if where == "after the imports":
        last = max(i for i, line in enumerate(lines) if re.match(r"(from \S+ )?import ", line))
        lines[last + 1:last + 1] = _indented(step.body, "")
    elif where.startswith("at the end of ") and where.endswith("=("):
        name = where.removeprefix("at the end of ")
        start = next(i for i, line in enumerate(lines) if line.strip() == name)
        indent = _indent_of(lines[start])
        close = next(i for i in range(start + 1, len(lines))
                     if lines[i].strip() == ")," and _indent_of(lines[i]) == indent)
        lines[close:close] = _indented(step.body, _indent_of(lines[start + 1]))
    elif where.startswith("replacing the line "):
        text = where.removeprefix("replacing the line ")
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(text))
        lines[at:at + 1] = _indented(step.body, _indent_of(lines[at]))
    elif where == "at the end of the declaration":
        close = max(i for i, line in enumerate(lines) if line == ")")
        lines[close:close] = _indented(step.body, _indent_of(lines[close - 1]))
    else:
        raise ValueError(f"unknown place {where!r} for {step.path}")
    path.write_text("\n".join(lines))
    return path

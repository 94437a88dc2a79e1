"""Instruction counts from callgrind: what the bench compares where time moves with the load.

The same binary, inputs and environment give the same count run after run, whatever else the
machine is doing, so these figures check the time ratios taken on a shared machine.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path


def collected(valgrind: str, argv: list[str], cwd: Path | str,
              env: dict[str, str] | None = None) -> int:
    """Instructions `argv` executes under callgrind (the whole process, start-up included)."""
    out = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True, text=True, cwd=cwd, env=env, check=True,
    )
    match = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count: {out.stderr[-300:]}")
    return int(match[1])


MARK = "import os; os.getppid()"  # a segment boundary in a measured program (see `segments`)


def segments(valgrind: str, argv: list[str], cwd: Path | str,
             env: dict[str, str] | None = None) -> list[int]:
    """Instructions of each part of one process, the parts separated by `MARK` in its code.

    callgrind dumps its counters before every `getppid()` (which nothing else here calls), so
    one run yields the start-up, then each part: no second interpreter start to subtract. The
    last segment is what follows the last mark, the interpreter's shutdown included.
    """
    with tempfile.TemporaryDirectory(prefix="cities-callgrind-") as out:
        subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}/cg",
             "--dump-before=getppid", *argv],
            capture_output=True, text=True, cwd=cwd, env=env, check=True,
        )
        files = sorted(Path(out).glob("cg.*"), key=lambda p: int(p.suffix[1:]))
        return [_total(path) for path in [*files, Path(out) / "cg"]]


def _total(path: Path) -> int:
    match = re.search(r"^totals:\s*(\d+)", path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"callgrind wrote no totals to {path.name}")
    return int(match[1])

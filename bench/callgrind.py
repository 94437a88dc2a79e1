"""Instruction counts from callgrind: what the bench compares where time moves with the load.

The same binary, inputs and environment give the same count run after run, whatever else the
machine is doing, so these figures check the time ratios taken on a shared machine.
"""

from __future__ import annotations

import re
import subprocess
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

"""Node.js, which the deploy checks need (`npm ci` installs the pinned deploy CLI, then runs it).

`make test` runs this module first: one clear line when Node is missing or too old. Locally the
suite then runs everything else and reports the deploy checks as not run; in CI (`CI` set) it
stops there, so the deploy checks are never skipped silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

MINIMUM = (20, 19)  # package.json's engines.node


def problem() -> str | None:
    """Why the deploy checks cannot run here, or None when Node and npm are fit."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return f"Node.js {MINIMUM[0]}.{MINIMUM[1]}+ with npm is not installed"
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    try:
        found = tuple(int(part) for part in out.stdout.strip().lstrip("v").split(".")[:2])
    except ValueError:
        return f"`node --version` printed {out.stdout.strip()!r}"
    if found < MINIMUM:
        return (f"Node.js {MINIMUM[0]}.{MINIMUM[1]}+ is needed, "
                f"found {out.stdout.strip()}")
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def main() -> int:
    reason = problem()
    if reason is None:
        return 0
    if in_ci():
        print(f"make test: {reason}; CI must run the deploy checks, so it stops here.",
              file=sys.stderr)
        return 1
    print(f"make test: {reason}: the deploy checks (tests needing Node) will NOT RUN; "
          "everything else runs.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

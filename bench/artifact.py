"""Artifact cold start: `handler` imported from the deployment zip on the runtime's Python.

What Lambda's init runs is the zip, not the source tree, so its bytecode and size are measured
against the one-route floor packed the same way and the usual packaging (no runtime bytecode).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.cold import IMPORT, timings
from bench.common import DUMMY_URL, ROOT, log, summary, target


def find_artifact() -> Path | None:
    """BENCH_ARTIFACT, else the newest packaging run's zip: dist/ first, then .serverless/."""
    explicit = os.environ.get("BENCH_ARTIFACT")
    if explicit:
        return Path(explicit)
    # dist/cities.zip first: the x86_64 zip, which this machine can import (not cities-arm64).
    for pattern in ("dist/cities.zip", "dist/*.zip", ".serverless/*.zip"):
        found = sorted(ROOT.glob(pattern))
        if found:
            return found[0]
    return None


# The cold-init snippet, importing `handler` from an unpacked zip (`-I`: nothing else on the path).
_ARTIFACT_IMPORT = "import sys; sys.path.insert(0, {d!r}); " + IMPORT.format(module="handler")


def bench_artifact(runs: int) -> dict[str, Any]:
    """Import `handler` from the unpacked zip on the runtime's Python, as Lambda's init does.

    The zip is the deployment work's (`make package`, deploy/package_lambda.py); nothing is
    packaged here beyond two variants of it: the one-route floor in the same zip (its handler
    compiled the same way), and the usual plugin packaging, i.e. the same files without bytecode
    for the runtime's Python, so every cold start compiles every module (`/var/task` is
    read-only: `-B`).
    """
    artifact = find_artifact()
    if artifact is None or not artifact.is_file():
        return {
            "skipped": "no deployment zip found (dist/*.zip, .serverless/*.zip or "
            "BENCH_ARTIFACT): run `make package` first"
        }
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        import package_lambda
    except ImportError:
        return {"skipped": "deploy/package_lambda.py (the deployment work) is not in this tree"}
    python = package_lambda.find_runtime_python()
    if python is None:
        return {"skipped": f"no Python {package_lambda.RUNTIME_VERSION} (the runtime's) found"}
    log(f"artifact: {artifact.name} on Python {package_lambda.RUNTIME_VERSION}")
    root = Path(tempfile.mkdtemp(prefix="cities-artifact-"))
    try:
        ours = root / "cities"
        with zipfile.ZipFile(artifact) as zf:
            zf.extractall(ours)
        floor = root / "floor"
        shutil.copytree(ours, floor)
        shutil.rmtree(floor / "cities")
        for stale in (floor / "__pycache__").glob("handler.*"):
            stale.unlink()
        shutil.copy(ROOT / "bench" / "floor_app.py", floor / "handler.py")
        package_lambda.compile_bytecode(floor, python)
        usual = root / "usual"
        shutil.copytree(ours, usual, ignore=shutil.ignore_patterns("__pycache__"))
        env = {"DATABASE_URL": DUMMY_URL, "LOG_LEVEL": "WARNING", "PATH": os.environ["PATH"]}
        variants = {
            "cities artifact": ours,
            "one-route artifact": floor,
            "usual packaging (no runtime bytecode)": usual,
        }
        wall: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        names = list(variants)
        rng = random.Random(3)
        for r in range(runs + 1):
            rng.shuffle(names)
            for name in names:
                code = _ARTIFACT_IMPORT.format(d=str(variants[name]))
                out = subprocess.run(
                    [python, "-B", "-I", "-S", "-c", code],
                    capture_output=True, text=True, cwd=root, env=env, check=True,
                )  # fmt: skip
                if r:  # the first round only warms the page cache
                    w, c = timings(out.stdout)
                    wall[name].append(w)
                    cpu[name].append(c)
        result: dict[str, Any] = {
            "artifact": artifact.name,
            "runtime_python": package_lambda.RUNTIME_VERSION,
            "zipped_mib": round(artifact.stat().st_size / 2**20, 2),
            "unpacked_mib": round(package_lambda.dir_size(ours) / 2**20, 2),
            "cpu": {n: summary(cpu[n]) for n in variants},
            "wall": {n: summary(wall[n]) for n in variants},
        }
        ours_ms, floor_ms, usual_ms = (result["cpu"][n]["median"] for n in variants)
        result["targets"] = {
            "artifact cold start (CPU) vs one-route artifact (<= 1.10x)": target(
                ours_ms / floor_ms, 1.10
            ),
            "artifact cold start (CPU) vs usual packaging (<= 0.45x)": target(
                ours_ms / usual_ms, 0.45
            ),
        }
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)

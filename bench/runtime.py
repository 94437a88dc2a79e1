"""`make bench`, section `runtime`: which Python and architecture the Lambda zip should default to.

Cold import of `handler` from the zip built for Python 3.12 and for 3.13 (each compiled by its
own interpreter, x86_64 wheels), interleaved on this machine, CPU time and, under callgrind,
instructions (which the machine's load does not move); and the zip's size per architecture
(`make package`: the aarch64 psycopg2 wheel bundles its own OpenSSL build too).
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import callgrind
from deploy import package_lambda

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("3.12", "3.13")
DUMMY_URL = "postgresql://bench:unused@127.0.0.1:9/bench"  # init never connects
_IMPORT = (
    "import sys, time; sys.path.insert(0, {d!r}); t = time.process_time(); import handler; "
    "sys.stdout.write(repr(time.process_time() - t))"
)


def _median_ms(samples: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return {"median": round(statistics.median(samples) * 1000, 2),
            "q1": round(q1 * 1000, 2), "q3": round(q3 * 1000, 2), "n": len(samples)}


def _env() -> dict[str, str]:
    return {"DATABASE_URL": DUMMY_URL, "LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}


def _instructions(python: str, task: Path) -> int | None:
    """Instructions `import handler` executes beyond a bare start (callgrind), or None."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None

    def collected(code: str) -> int:
        return callgrind.collected(
            valgrind, [python, "-B", "-I", "-S", "-c", code], task, _env())

    return collected(_IMPORT.format(d=str(task))) - collected("pass")


def cold_import_per_python(runs: int, work: Path) -> dict[str, Any]:
    """The same sources and pins, packaged for each Python; `import handler` as Lambda's init."""
    tasks: dict[str, tuple[str, Path]] = {}
    for version in VERSIONS:
        python = package_lambda.find_runtime_python(version)
        if python is None:
            return {"skipped": f"no Python {version} interpreter found"}
        zip_path = work / f"cities-{version}.zip"
        package_lambda.build(zip_path, work / f"build-{version}", python, version=version)
        task = work / f"task-{version}"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        tasks[version] = (python, task)
    cpu: dict[str, list[float]] = defaultdict(list)
    order = list(VERSIONS)
    rng = random.Random(20)
    for round_ in range(runs + 1):
        rng.shuffle(order)
        for version in order:
            python, task = tasks[version]
            out = subprocess.run(
                [python, "-B", "-I", "-S", "-c", _IMPORT.format(d=str(task))],
                capture_output=True, text=True, cwd=task, env=_env(), check=True,
            )  # fmt: skip
            if round_:  # the first round only warms the page cache
                cpu[version].append(float(out.stdout))
    result: dict[str, Any] = {
        "pythons": {v: subprocess.run([p, "-c", "import sys; print(sys.version.split()[0])"],
                                      capture_output=True, text=True, check=True).stdout.strip()
                    for v, (p, _) in tasks.items()},
        "cpu": {v: _median_ms(cpu[v]) for v in VERSIONS},
        "instructions": {v: _instructions(*tasks[v]) for v in VERSIONS},
    }
    old, new = (result["cpu"][v]["median"] for v in VERSIONS)
    result["cpu_ratio"] = round(new / old, 3)
    counts = result["instructions"]
    if None not in counts.values():
        result["instruction_ratio"] = round(counts["3.13"] / counts["3.12"], 3)
    return result


def zip_sizes() -> dict[str, Any]:
    """Zipped and unpacked MiB of each architecture's zip from `make package`."""
    sizes: dict[str, Any] = {}
    for architecture in package_lambda.ARTIFACTS:
        path = package_lambda.artifact(architecture)
        if not path.is_file():
            return {"skipped": f"{path.name} not built: run `make package` first"}
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            libs = sum(info.file_size for info in archive.infolist()
                       if info.filename.startswith("psycopg2_binary.libs/"))
        sizes[architecture] = {"zipped_mib": round(path.stat().st_size / 2**20, 2),
                               "unpacked_mib": round(unpacked / 2**20, 2),
                               "psycopg2_libs_mib": round(libs / 2**20, 2)}
    sizes["arm64_vs_x86_64_zipped"] = round(
        sizes["arm64"]["zipped_mib"] / sizes["x86_64"]["zipped_mib"], 3)
    return sizes


def bench_runtime(runs: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cities-runtime-"))
    try:
        return {"cold": cold_import_per_python(runs, work), "zips": zip_sizes()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(result: dict[str, Any]) -> list[str]:
    """The report's markdown lines for this section."""
    out: list[str] = []
    cold, zips = result["cold"], result["zips"]
    if "skipped" in cold:
        out.append(f"Cold import per Python: skipped: {cold['skipped']}.")
    else:
        out += ["`import handler` from the zip built for each Python (x86_64 wheels, its own "
                "bytecode), `-B -I -S`, interleaved:", "",
                "| runtime | Python | import CPU (median, IQR) | instructions |",
                "|---|---|---|---|"]
        for version, t in cold["cpu"].items():
            count = cold["instructions"][version]
            shown = f"{count / 1e6:.0f} M" if count else "n/a"
            out.append(f"| python{version} | {cold['pythons'][version]} | {t['median']:.1f} ms "
                       f"({t['q1']:.1f}-{t['q3']:.1f}) | {shown} |")
        ratio = cold.get("instruction_ratio")
        ratio = f"; instructions {ratio}x" if ratio else ""
        out += ["", f"3.13 vs 3.12: CPU {cold['cpu_ratio']}x{ratio}."]
    if "skipped" in zips:
        out.append(f"\nZip size per architecture: skipped: {zips['skipped']}.")
    else:
        out += ["", "| architecture | zipped | unpacked | of which psycopg2-binary's libraries |",
                "|---|---|---|---|"]
        for architecture in package_lambda.ARTIFACTS:
            z = zips[architecture]
            out.append(f"| {architecture} | {z['zipped_mib']} MiB | {z['unpacked_mib']} MiB | "
                       f"{z['psycopg2_libs_mib']} MiB |")
        out += ["", f"arm64 vs x86_64, zipped: {zips['arm64_vs_x86_64_zipped']}x."]
    for line in verdict(result):
        out += ["", line]
    return out


def verdict(result: dict[str, Any]) -> list[str]:
    """Which defaults the figures support, derived from them."""
    cold, zips = result["cold"], result["zips"]
    lines = []
    if "skipped" not in cold:
        counted = cold.get("instruction_ratio")
        no_slower = (counted or cold["cpu_ratio"]) <= 1.02
        measure = f"{counted}x the instructions" if counted else f"{cold['cpu_ratio']}x the CPU"
        lines.append(
            f"Python: python3.13's cold import costs {measure} of 3.12's (CPU "
            f"{cold['cpu_ratio']}x, noisy on this shared machine): "
            + ("no cold-start reason to stay on 3.12, so python3.13 (supported eight months "
               "longer) is the default." if no_slower else
               "3.13 is measurably slower to import; weigh that against its longer support.")
        )
    if "skipped" not in zips:
        lines.append(
            f"Architecture: the arm64 zip is {zips['arm64_vs_x86_64_zipped']}x the x86_64 one "
            f"(psycopg2-binary's aarch64 libraries: {zips['arm64']['psycopg2_libs_mib']} vs "
            f"{zips['x86_64']['psycopg2_libs_mib']} MiB unpacked), far inside Lambda's limits, "
            "and a cold start reads only what it imports. Its speed cannot be measured here "
            "(only emulated), so x86_64 stays the default and arm64 (20% cheaper per GB-second) "
            "is a per-stage choice to measure on Lambda itself."
        )
    return lines


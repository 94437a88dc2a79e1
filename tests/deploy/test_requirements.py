"""Every pinned requirement installs from a wheel on every supported Python and platform.

The embedded server this project used first had no wheels past Python 3.12, and newcomers found
out at `make run`. This reads each pin's files from the package index pip is configured with
(the JSON simple API) and checks, as pip would on each target, that one wheel's tags and
`Requires-Python` fit it. It needs that index: without it, the test fails with the error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from packaging import tags
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = ((3, 11), (3, 12), (3, 13), (3, 14))


def _manylinux(arch: str) -> list[str]:
    """glibc 2.28 and older (Debian 10, RHEL 8, Ubuntu 20.04 and later have at least that)."""
    legacy = ["manylinux2014", *(["manylinux2010", "manylinux1"] if arch == "x86_64" else [])]
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 4, -1)] + [
        f"{name}_{arch}" for name in legacy]


PLATFORMS = {
    "linux x86_64": _manylinux("x86_64"),
    "linux aarch64": _manylinux("aarch64"),
    "macOS arm64": list(tags.mac_platforms((11, 0), "arm64")),  # 11: the first on Apple silicon
}
# The environment markers each platform gives a pin (a pin may leave out where it has no wheel).
MARKERS = {
    "linux x86_64": {"sys_platform": "linux", "platform_system": "Linux",
                     "platform_machine": "x86_64"},
    "linux aarch64": {"sys_platform": "linux", "platform_system": "Linux",
                      "platform_machine": "aarch64"},
    "macOS arm64": {"sys_platform": "darwin", "platform_system": "Darwin",
                    "platform_machine": "arm64"},
}
REQUIREMENTS = ("requirements.txt", "requirements-run.txt", "requirements-dev.txt")


def pins() -> list[Requirement]:
    found = []
    for name in REQUIREMENTS:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                found.append(Requirement(line))
    return found


def supported(python: tuple[int, int], platforms: list[str]) -> set[tags.Tag]:
    """The wheel tags CPython `python` accepts on those platforms, as pip computes them."""
    interpreter = f"cp{python[0]}{python[1]}"
    return {*tags.cpython_tags(python, [interpreter], platforms),
            *tags.compatible_tags(python, interpreter, platforms)}


def index_url() -> str:
    """The index pip installs from here (its configuration), else pip's default."""
    configured = os.environ.get("PIP_INDEX_URL") or subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True, text=True, check=False).stdout.strip()
    if configured:
        return configured.rstrip("/")
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


@cache
def files(index: str, name: str) -> list[dict]:
    request = urllib.request.Request(f"{index}/{canonicalize_name(name)}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)["files"]


def wheels_of(index: str, pin: Requirement) -> list[tuple[frozenset[tags.Tag], str | None]]:
    """(tags, Requires-Python) of each unyanked wheel of the pinned version."""
    (version,) = (spec.version for spec in pin.specifier)
    wheels = []
    for file in files(index, pin.name):
        if not file["filename"].endswith(".whl") or file.get("yanked"):
            continue
        _, wheel_version, _, wheel_tags = parse_wheel_filename(file["filename"])
        if wheel_version == Version(version):
            wheels.append((wheel_tags, file.get("requires-python")))
    return wheels


def test_every_requirement_is_pinned_to_one_version():
    for pin in pins():
        assert [spec.operator for spec in pin.specifier] == ["=="], pin


def without_wheels(requirements: list[Requirement]) -> list[str]:
    """Each (pin, Python, platform) for which no wheel of the pin installs."""
    index = index_url()
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = pool.map(lambda pin: wheels_of(index, pin), requirements)
        wheels = dict(zip(requirements, found, strict=True))
    missing = []
    for python in PYTHONS:
        full = ".".join(map(str, python)) + ".0"
        for platform, platform_tags in PLATFORMS.items():
            accepted = supported(python, platform_tags)
            markers = {**MARKERS[platform], "python_version": full[:-2],
                       "python_full_version": full}
            for pin, candidates in wheels.items():
                if pin.marker and not pin.marker.evaluate(markers):
                    continue  # pip does not install it there
                if not any(wheel_tags & accepted
                           and (not requires or SpecifierSet(requires).contains(full))
                           for wheel_tags, requires in candidates):
                    missing.append(f"{pin} on Python {python[0]}.{python[1]}, {platform}")
    return missing


def test_every_pinned_requirement_has_a_wheel_for_each_supported_python_and_platform():
    missing = without_wheels(pins())
    assert not missing, "no installable wheel for:\n" + "\n".join(missing)


def test_the_check_catches_the_embedded_server_this_project_left():
    """pgserver 0.1.4: wheels for CPython up to 3.12, and none for Linux on ARM."""
    assert without_wheels([Requirement("pgserver==0.1.4")]) == [
        "pgserver==0.1.4 on Python 3.11, linux aarch64",
        "pgserver==0.1.4 on Python 3.12, linux aarch64",
        *(f"pgserver==0.1.4 on Python 3.{minor}, {platform}"
          for minor in (13, 14) for platform in PLATFORMS),
    ]

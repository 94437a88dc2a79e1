"""The arm64 zip (`dist/cities-arm64.zip`, a stage's `architecture: arm64`) is built for it.

The same app and bytecode as the x86_64 zip, with the manylinux aarch64 builds of the compiled
wheels: an x86_64 extension in it would fail init with `No module named 'psycopg2._psycopg'`.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from deploy import package_lambda
from tests.deploy.test_artifact import _fits_runtime, assert_extensions_built_for, build_zip

EM_AARCH64 = 183


@pytest.fixture(scope="module")
def zips() -> dict[str, Path]:
    build_zip()
    return {arch: package_lambda.artifact(arch) for arch in package_lambda.ARTIFACTS}


@pytest.fixture(scope="module")
def unpacked_arm64(zips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("var_task_arm64")
    with zipfile.ZipFile(zips["arm64"]) as archive:
        archive.extractall(target)
    return target


def test_arm64_wheels_are_the_manylinux_aarch64_builds(unpacked_arm64: Path) -> None:
    binary = []
    for wheel in sorted(unpacked_arm64.glob("*.dist-info/WHEEL")):
        tags = re.findall(r"^Tag: (\S+)$", wheel.read_text(), re.M)
        binary += [tag for tag in tags if not tag.endswith("-any")]
    assert len(binary) >= 2, binary  # psycopg2-binary and MarkupSafe at least
    for tag in binary:
        assert _fits_runtime(tag, "aarch64"), tag


def test_arm64_extensions_are_aarch64_for_the_runtimes_glibc(unpacked_arm64: Path) -> None:
    assert_extensions_built_for(unpacked_arm64, "aarch64", EM_AARCH64)


def test_both_zips_ship_the_same_app_and_bytecode(zips: dict[str, Path]) -> None:
    """Bytecode does not depend on the CPU: only the compiled wheels differ."""
    contents = {}
    for arch, path in zips.items():
        with zipfile.ZipFile(path) as archive:
            contents[arch] = {name: archive.read(name) for name in archive.namelist()
                              if name.startswith(("cities/", "handler.py", "__pycache__/"))}
    assert contents["x86_64"] and contents["x86_64"] == contents["arm64"]
    assert package_lambda.main(["--verify"]) == 0

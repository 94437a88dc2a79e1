"""The arm64 zip, run for real: an aarch64 CPython (Debian's) under qemu-user on a Graviton2 CPU
model, driven by AWS's emulator and the aarch64 build of awslambdaric, against PostgreSQL.

Emulation is slow, so the function timeout here is Lambda's maximum (900 s): a guard against a
hang, never a speed expectation. Skips, saying why, where qemu-user or the packages are missing
(`.ci/run` installs qemu-user-static; `make lambda-rie` fetches the rest).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deploy import package_lambda
from tests.deploy.test_artifact import build_zip
from tests.support import arm64_python, rie
from tests.support.lambda_events import http_api_event, to_reply

RUNTIME = package_lambda.RUNTIME_VERSION
LAMBDA_MAX_TIMEOUT_S = 900
API_KEY = "arm-key"


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The emulated runtime: qemu prefix, aarch64 Python, runtime client, the unpacked zip."""
    try:
        root = arm64_python.sysroot(RUNTIME)
        prefix = arm64_python.qemu_prefix(root)
        client = rie.runtime_client(RUNTIME, "arm64")
        rie.emulator("x86_64")
    except rie.Unavailable as exc:
        pytest.skip(f"the arm64 zip cannot be emulated here: {exc}")
    build_zip()
    task = tmp_path_factory.mktemp("var_task_arm64")
    shutil.unpack_archive(package_lambda.artifact("arm64"), task, "zip")
    return {"prefix": prefix, "python": str(root / "usr" / "bin" / f"python{RUNTIME}"),
            "client": client, "task": task}


def _start(arm64: dict, handler: str, url: str, log: Path):
    env = {"DATABASE_URL": url, "API_KEYS": API_KEY, "LOG_LEVEL": "INFO"}
    return rie.running(arm64["task"], arm64["python"], handler, env,
                       runtime_client_dir=arm64["client"], timeout_s=LAMBDA_MAX_TIMEOUT_S,
                       log=log, command_prefix=arm64["prefix"])


def test_the_arm64_zip_migrates_and_serves_on_an_emulated_graviton(
    arm64: dict, databases, tmp_path: Path
) -> None:
    url = databases.create()
    with _start(arm64, "handler.migrate", url, tmp_path / "migrate.log") as migrate:
        applied = migrate.invoke({})
    assert applied.status == 200 and applied.payload["applied"], applied

    with _start(arm64, "handler.api", url, tmp_path / "api.log") as api:
        probe = api.invoke(http_api_event(
            "POST", "/cities", {"name": "Tulsa", "state": "Oklahoma"},
            headers={"authorization": f"Bearer {API_KEY}"}))
        created = to_reply(probe.payload)
        listed = to_reply(api.invoke(http_api_event("GET", "/cities")).payload)
        health = to_reply(api.invoke(http_api_event("GET", "/health")).payload)
        logs = api.logs()
    assert created.status == 201 and created.json["name"] == "Tulsa"
    assert listed.status == 200 and [c["name"] for c in listed.json] == ["Tulsa"]
    assert health.status == 200 and health.json["status"] == "ok"
    # It really ran on aarch64: the emulated interpreter loaded the zip's aarch64 extension.
    assert "exec '" + arm64["prefix"][0] in logs
    lines = [json.loads(line.split("\t")[-1]) for line in logs.splitlines()
             if '"event":"request"' in line]
    assert [line["status"] for line in lines] == [201, 200, 200]

"""AWS's own Lambda runtime stack on this machine: the Runtime Interface Emulator and awslambdaric.

The emulator (RIE) is the static binary AWS ships inside the `aws-sam-cli` wheel; that one wheel
is downloaded by pip (no dependencies), checked against the hash pinned here, and only the
binary is extracted. `awslambdaric`, the runtime client the Lambda Python images run, is
installed per Python version and architecture the way the zip's wheels are (manylinux, no
compile), so it is the runtime's build, not the host's. Everything is cached under `.cache/`
(git-ignored); `python -m tests.support.rie` fetches it ahead of the suite (`.ci/run`).

The emulator listens on 0.0.0.0:8080 unless told otherwise, and runs whatever follows its flags
(`--help` included) as the runtime, so it is only ever started here, bound to loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "lambda-rie"
SAM_CLI_VERSION = "1.170.0"
SAM_CLI_WHEEL = f"aws_sam_cli-{SAM_CLI_VERSION}-py3-none-any.whl"
SAM_CLI_SHA256 = "24ebaf5ecba38dc1758089968cb89ab61e124b84e92a344fc7a2771a47f4d0bf"
# The runtime client and its dependencies, pinned (its build for the runtime's Python and arch).
RUNTIME_CLIENT = ("awslambdaric==4.2.2", "simplejson==4.3.0", "snapshot-restore-py==1.0.0")
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> manylinux's
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# Only a guard against a hung process, never a speed expectation.
HANG_GUARD_S = 120


class Unavailable(RuntimeError):
    """The emulator or the runtime client cannot be had here (offline, no pip): tests skip."""


def emulator(architecture: str = "x86_64") -> Path:
    """The cached RIE binary for `architecture` (Lambda's name), fetched on first use."""
    binary = CACHE / f"aws-lambda-rie-{architecture}"
    if binary.is_file():
        return binary
    wheel = _sam_cli_wheel()
    member = f"samcli/local/rapid/aws-lambda-rie-{architecture}"
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(member)
    tmp = binary.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(binary)
    return binary


def _sam_cli_wheel() -> Path:
    wheel = CACHE / SAM_CLI_WHEEL
    if not wheel.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        _pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(CACHE),
             f"aws-sam-cli=={SAM_CLI_VERSION}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != SAM_CLI_SHA256:
        wheel.unlink()
        raise Unavailable(f"{SAM_CLI_WHEEL}: sha256 {digest} is not the pinned {SAM_CLI_SHA256}")
    return wheel


def runtime_client(version: str, architecture: str = "x86_64") -> Path:
    """A folder holding awslambdaric built for CPython `version` on `architecture`."""
    target = CACHE / f"awslambdaric-cp{version.replace('.', '')}-{architecture}"
    if (target / "awslambdaric").is_dir():
        return target
    platform = ARCHITECTURES[architecture]
    tmp = target.with_name(target.name + ".tmp")
    _pip("install", "--target", str(tmp), "--no-deps", "--only-binary=:all:", "--no-compile",
         "--implementation", "cp", "--python-version", version,
         "--abi", f"cp{version.replace('.', '')}",
         "--platform", f"manylinux2014_{platform}", "--platform", f"manylinux_2_28_{platform}",
         *RUNTIME_CLIENT)
    tmp.replace(target)
    return target


def _pip(*args: str) -> None:
    fetch([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
          f"pip {args[0]}")


def fetch(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run a command that fetches from a package registry; Unavailable (tests skip) if it fails."""
    try:
        found = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False,
                               cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what} failed: {exc}") from None
    if found.returncode != 0:
        raise Unavailable(f"{what} failed: {found.stderr.strip()[-400:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Invocation:
    """What the emulator answered one invoke: Lambda's own status, headers and payload."""

    status: int
    headers: Mapping[str, str]
    payload: Any


class Emulator:
    """A running RIE with its runtime: invoke it, read what it logged."""

    def __init__(self, url: str, log: Path, timeout_s: int) -> None:
        self.url = url
        self.log = log
        self.timeout_s = timeout_s

    def invoke(self, event: Any) -> Invocation:
        request = urllib.request.Request(self.url + INVOKE_PATH, data=json.dumps(event).encode())
        try:
            # The function's own timeout answers first; this only guards against a hang.
            with urllib.request.urlopen(request, timeout=self.timeout_s + HANG_GUARD_S) as reply:
                status, headers, body = reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, dict(error.headers), error.read()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        return Invocation(status, headers, payload)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def request_ids(self) -> list[str]:
        """The invocation ids of the emulator's START lines, in order."""
        return re.findall(r"^START RequestId: (\S+)", self.logs(), re.M)


@contextmanager
def running(
    task: Path,
    python: str,
    handler: str,
    env: Mapping[str, str],
    *,
    runtime_client_dir: Path,
    architecture: str = "x86_64",
    timeout_s: int = 25,
    log: Path,
    command_prefix: tuple[str, ...] = (),
) -> Iterator[Emulator]:
    """The RIE serving `handler` from the unpacked zip at `task`, on loopback ports only.

    Like /var/task on Lambda, the task folder comes first on the runtime's path, then the runtime
    client; `-S` keeps the interpreter's own site-packages (boto3 and the like) out.
    `command_prefix` runs the runtime under an emulator (qemu-user) while the RIE stays native.
    """
    port, api_port = _free_port(), _free_port()
    runtime_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{task}:{runtime_client_dir}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(task),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_s),
        "AWS_LAMBDA_FUNCTION_NAME": "cities-test-" + handler.split(".")[-1],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "eu-west-1",
        **env,
    }
    cmd = [
        str(emulator("x86_64")),
        "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
        "--runtime-api-address", f"127.0.0.1:{api_port}",
        *command_prefix, python, "-S", "-m", "awslambdaric", handler,
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            cmd, cwd=task, env=runtime_env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process)
        yield Emulator(f"http://127.0.0.1:{port}", log, timeout_s)
    finally:
        process.terminate()
        try:
            process.wait(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the emulator never listened")


def main() -> int:
    """Fetch the emulators and runtime clients the suite uses (run by `.ci/run`)."""
    from deploy import package_lambda
    from tests.support import arm64_python

    try:
        for architecture in ARCHITECTURES:
            emulator(architecture)
            runtime_client(package_lambda.RUNTIME_VERSION, architecture)
        arm64_python.sysroot(package_lambda.RUNTIME_VERSION)
    except Unavailable as exc:
        print(f"Lambda emulator tests will skip: {exc}", file=sys.stderr)
        return 0
    print(f"Lambda emulator ready in {CACHE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

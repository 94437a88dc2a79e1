"""Build the Lambda deployment zip: the app plus its runtime wheels, for the runtime, not the host.

Run by `make package`. The classic failures of this stack are deploy-time, so each is made
impossible here rather than discovered in CloudWatch:

- `No module named 'psycopg2._psycopg'`: wheels are chosen by pip for the *runtime's* platform,
  Python version and ABI (`--platform manylinux... --python-version 3.13 --only-binary=:all:`),
  whatever machine builds the zip, so no Docker is needed and no sdist is ever compiled here.
- A missing `werkzeug`: the pinned `requirements.txt` is installed with its dependencies, and the
  suite imports the unpacked zip alone, with nothing else on `sys.path`.
- Slow cold starts: `/var/task` is read-only, so Python cannot cache bytecode there; without
  `.pyc` files for the runtime's exact version every cold start compiles every module. pip run by
  the host's Python would write `cpython-311` files that a 3.13 runtime ignores, so pip compiles
  nothing and the runtime's own interpreter compiles everything, with `unchecked-hash`
  invalidation (the zip's timestamps are meaningless and the files never change, so the import
  system must not stat or hash the sources).

The zip is reproducible (sorted entries, fixed timestamps and modes): an unchanged build has the
same hash, so a redeploy of unchanged code does not upload a new function version.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_VERSION = "3.13"  # keep in step with `provider.runtime` in serverless.yml
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34) on either architecture a stage picks
# (`architecture` in serverless.yml's params): one zip each, from that architecture's wheels.
PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
# Keep in step with `custom.artifacts` in serverless.yml.
ARTIFACTS = {"x86_64": "cities.zip", "arm64": "cities-arm64.zip"}
APP_FILES = ("handler.py",)
APP_PACKAGES = ("cities",)
# Development-only files of the app package: never read on Lambda (schema.sql is for people,
# squawk.toml for the migration linter, settings_docs.py writes .env.example and the docs).
APP_EXCLUDE = (
    "cities/ops/embedded.py", "cities/db/schema.sql", "cities/db/migrations/squawk.toml",
    "cities/ops/settings_docs.py",
)
# What a dist-info folder keeps: METADATA (so importlib.metadata.version() still works), WHEEL
# (the platform tags the suite checks) and the licence files the wheels ship; RECORD, INSTALLER,
# REQUESTED, entry points and the like only serve pip.
DIST_INFO_KEEP = ("METADATA", "WHEEL")
# flask-swagger-ui ships the whole Swagger UI distribution; /docs serves only the bundle and its
# CSS (cities/http/docs_api.py), so the standalone build, its preset and the OAuth2 page stay out.
DEPENDENCY_EXCLUDE = (
    "flask_swagger_ui/dist/swagger-ui.js",
    "flask_swagger_ui/dist/swagger-ui-standalone-preset.js",
    "flask_swagger_ui/dist/oauth2-redirect.html",
    "flask_swagger_ui/dist/oauth2-redirect.js",
    "flask_swagger_ui/dist/index.css",
    "flask_swagger_ui/dist/favicon-16x16.png",
    "flask_swagger_ui/dist/favicon-32x32.png",
)
FIXED_DATE = (2020, 1, 1, 0, 0, 0)


def find_runtime_python(version: str = RUNTIME_VERSION) -> str | None:
    """An interpreter of the runtime's exact version: $RUNTIME_PYTHON, PATH, then pyenv.

    Each candidate is run to check its version: a pyenv shim on PATH exists even when it cannot
    run that version.
    """
    candidates = [os.environ.get("RUNTIME_PYTHON", "")]
    candidates.append(shutil.which(f"python{version}") or "")
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")),
        reverse=True,
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(  # noqa: S603 - a local interpreter path, no shell
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30, check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def install_wheels(
    target: Path, requirements: Path, version: str, architecture: str = "x86_64"
) -> None:
    """Install the pinned runtime requirements as the runtime's manylinux wheels, uncompiled."""
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(target), "--requirement", str(requirements),
        "--implementation", "cp", "--python-version", version,
        "--abi", f"cp{version.replace('.', '')}",
        "--only-binary=:all:", "--no-compile",
    ]
    for platform in PLATFORMS[architecture]:
        cmd += ["--platform", platform]
    subprocess.run(cmd, check=True)  # noqa: S603 - fixed argv


def prune(target: Path) -> None:
    """Remove what pip leaves for itself (scripts, caches, dist-info bookkeeping) and the
    dependencies' files the app never reads."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for name in DEPENDENCY_EXCLUDE:
        (target / name).unlink(missing_ok=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache)
    for dist_info in target.glob("*.dist-info"):
        for path in sorted(dist_info.rglob("*"), reverse=True):
            relative = path.relative_to(dist_info)
            keep = relative.parts[0] in DIST_INFO_KEEP or relative.parts[0] == "licenses"
            keep = keep or path.name.upper().startswith(("LICENSE", "LICENCE", "COPYING"))
            if path.is_file() and not keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def copy_app(target: Path) -> None:
    for name in APP_FILES:
        shutil.copy2(ROOT / name, target / name)
    for package in APP_PACKAGES:
        for source in sorted((ROOT / package).rglob("*")):
            relative = source.relative_to(ROOT)
            if "__pycache__" in relative.parts or source.suffix == ".pyc" or source.is_dir():
                continue
            if relative.as_posix() in APP_EXCLUDE:
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


def compile_bytecode(target: Path, python: str) -> None:
    """Compile with the runtime's interpreter; tracebacks name /var/task, where Lambda unpacks.

    A fixed hash seed keeps the bytes reproducible: frozenset constants (`x in {"a", "b"}`) are
    marshalled in iteration order, which string hash randomization would change per build; and
    one process (`-j 1`): marshal's back-references depend on what the process compiled before.
    """
    subprocess.run(  # noqa: S603 - fixed argv
        [
            python, "-m", "compileall", "-q", "-j", "1",
            "--invalidation-mode", "unchecked-hash",
            "-s", str(target), "-p", "/var/task", str(target),
        ],
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


# zlib's default level: 9 made the zip 0.6% smaller (12.47 MB against 12.55 MB) in 3.7 s
# instead of 1.0 s per zip, a cost every `make package` (and `make test`, three zips) paid.
ZIP_LEVEL = 6


def write_zip(source: Path, zip_path: Path) -> None:
    """A reproducible zip: sorted names, fixed dates, world-readable modes (Lambda runs as a
    different user than the one that owns the files)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_dir():
                continue
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, path.read_bytes(), compresslevel=ZIP_LEVEL)
    tmp.replace(zip_path)


def build(
    zip_path: Path, build_dir: Path, python: str | None, version: str = RUNTIME_VERSION,
    architecture: str = "x86_64",
) -> dict[str, int]:
    """Build the zip for `architecture`; returns sizes in bytes for the report.

    Bytecode does not depend on the architecture: the same interpreter compiles both zips.
    """
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    install_wheels(build_dir, ROOT / "requirements.txt", version, architecture)
    prune(build_dir)
    copy_app(build_dir)
    if python:
        compile_bytecode(build_dir, python)
    write_zip(build_dir, zip_path)
    return {"zip": zip_path.stat().st_size, "unpacked": dir_size(build_dir)}


def dir_size(path: Path) -> int:
    """Bytes of the files under `path`: the unpacked size Lambda counts against its limit."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def has_runtime_bytecode(zip_path: Path, version: str = RUNTIME_VERSION) -> bool:
    """Whether the zip ships the runtime's bytecode (a test build may have been made without)."""
    tag = version.replace(".", "")
    with zipfile.ZipFile(zip_path) as archive:
        return f"__pycache__/handler.cpython-{tag}.pyc" in archive.namelist()


def artifact(architecture: str) -> Path:
    """Where `make package` writes the zip for `architecture` (serverless.yml deploys it)."""
    return ROOT / "dist" / ARTIFACTS[architecture]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--architecture", choices=(*PLATFORMS, "all"), default="all",
        help="the Lambda architecture to build for (default: a zip for each)",
    )
    parser.add_argument("--output", type=Path, help="the zip to write or verify (one "
                        "architecture); default dist/cities.zip, dist/cities-arm64.zip")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "lambda")
    parser.add_argument(
        "--allow-missing-bytecode", action="store_true",
        help=f"build without .pyc files when no Python {RUNTIME_VERSION} is installed "
        "(a slower cold start; for tests only, never for a deploy)",
    )
    parser.add_argument(
        "--verify", action="store_true",
        help="only check that the existing zips have the runtime's bytecode (before a deploy)",
    )
    args = parser.parse_args(argv)
    architectures = list(PLATFORMS) if args.architecture == "all" else [args.architecture]
    outputs = {arch: artifact(arch) for arch in architectures}
    if args.output and args.verify:
        outputs = {"given": args.output}
    elif args.output:
        if len(architectures) > 1:
            parser.error("--output needs one --architecture")
        outputs = {architectures[0]: args.output}

    if args.verify:
        return max(verify(path) for path in outputs.values())

    python = find_runtime_python()
    if python is None and not args.allow_missing_bytecode:
        print(
            f"error: no Python {RUNTIME_VERSION} interpreter found to compile the runtime's "
            f"bytecode; install one (e.g. `pyenv install {RUNTIME_VERSION}`) or set "
            "RUNTIME_PYTHON to its path",
            file=sys.stderr,
        )
        return 2
    if python is None:
        print(f"warning: no Python {RUNTIME_VERSION} found: the zip ships without bytecode",
              file=sys.stderr)
    for arch, output in outputs.items():
        sizes = build(output, args.build_dir / arch, python, architecture=arch)
        shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
        print(
            f"built {shown} ({arch}): {sizes['zip'] / 1024 / 1024:.2f} MiB zipped, "
            f"{sizes['unpacked'] / 1024 / 1024:.2f} MiB unpacked (Lambda's limit: 250 MiB); "
            f"bytecode: {'cpython-' + RUNTIME_VERSION.replace('.', '') if python else 'none'}"
        )
    return 0


def verify(output: Path) -> int:
    """0 when `output` has the runtime's bytecode; otherwise removes it (so the next
    `make package` rebuilds it) and says why."""
    if output.is_file() and has_runtime_bytecode(output):
        return 0
    output.unlink(missing_ok=True)
    print(f"error: {output.name} has no Python {RUNTIME_VERSION} bytecode (a test build?); "
          f"run `make package` with Python {RUNTIME_VERSION} installed, then deploy again",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

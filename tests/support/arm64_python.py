"""An aarch64 CPython of the runtime's version, from Debian's packages, run under qemu-user.

The packages come from the Debian release that ships that Python (3.13: trixie) through a
private apt configuration (its own sources, lists, status and cache under `.cache/`), so the
machine's apt state and dpkg architectures stay untouched; `dpkg -x` unpacks them into a
sysroot that `qemu-aarch64-static -L` serves as the emulated root. The archive's address is
the one the machine's own apt sources use; apt checks the release signatures with the
machine's Debian keyring.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.support.rie import CACHE, Unavailable, fetch

# The Debian release whose default Python is each runtime version.
DEBIAN_SUITES = {"3.13": "trixie"}
QEMU = "qemu-aarch64-static"
# A Graviton2 core: what Lambda's arm64 functions run on.
QEMU_CPU = "neoverse-n1"
SYSTEM_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# The interpreter and its standard library; awslambdaric's extension is C++ (Lambda's image
# has libstdc++ too).
PACKAGES = ("python{v}-minimal", "libpython{v}-stdlib", "libstdc++6")


def qemu_prefix(root: Path) -> tuple[str, ...]:
    """The command prefix that runs an aarch64 program of `root` on this machine."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise Unavailable(f"{QEMU} is not installed (Debian: qemu-user-static)")
    return (qemu, "-cpu", QEMU_CPU, "-L", str(root))


def sysroot(version: str) -> Path:
    """A folder holding Debian's aarch64 `python<version>` and its libraries, fetched once."""
    root = CACHE.parent / f"arm64-python{version}"
    packages = [name.format(v=version) for name in PACKAGES]
    stamp = root / ".packages"
    if stamp.is_file() and stamp.read_text() == " ".join(packages):
        return root
    suite = DEBIAN_SUITES.get(version)
    if suite is None or shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise Unavailable(f"no Debian aarch64 Python {version} to fetch here (apt, dpkg)")
    debs = _download(packages, suite, CACHE.parent / "arm64-apt")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for deb in debs:
        _run(["dpkg", "-x", str(deb), str(tmp)])
    (tmp / "lib").symlink_to("usr/lib")  # merged /usr: the loader's /lib path
    (tmp / ".packages").write_text(" ".join(packages))
    shutil.rmtree(root, ignore_errors=True)
    tmp.replace(root)
    return root


def _archive_uri() -> str:
    found = re.search(r"^URIs:\s*(\S+)", SYSTEM_SOURCES.read_text(), re.M) if \
        SYSTEM_SOURCES.is_file() else None
    if found is None:
        raise Unavailable(f"no Debian archive named in {SYSTEM_SOURCES}")
    return found.group(1)


def _download(packages: list[str], suite: str, state: Path) -> list[Path]:
    """The .debs of `packages` for arm64, dependencies included."""
    shutil.rmtree(state, ignore_errors=True)
    for folder in ("lists/partial", "archives/partial", "sources"):
        (state / folder).mkdir(parents=True)
    (state / "sources" / f"{suite}.sources").write_text(
        f"Types: deb\nURIs: {_archive_uri()}\nSuites: {suite}\nComponents: main\n"
        f"Architectures: arm64\nSigned-By: {KEYRING}\n")
    (state / "status").write_text("")  # nothing installed: apt fetches the whole closure
    options = [
        "-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64",
        "-o", f"Dir::State={state}", "-o", f"Dir::State::Lists={state}/lists",
        "-o", f"Dir::State::status={state}/status", "-o", f"Dir::Cache={state}",
        "-o", f"Dir::Cache::archives={state}/archives", "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", f"Dir::Etc::SourceParts={state}/sources", "-o", "Dir::Etc::Preferences=/dev/null",
        "-o", "Dir::Etc::PreferencesParts=/dev/null", "-o", "APT::Install-Recommends=false",
        "-o", "Debug::NoLocking=true",
    ]
    _run(["apt-get", *options, "-q", "update"])
    _run(["apt-get", *options, "-q", "-y", "install", "--download-only", *packages])
    return sorted((state / "archives").glob("*.deb"))



def _run(cmd: list[str]) -> None:
    fetch(cmd, " ".join(cmd[:2]))

"""An aarch64 CPython of the runtime's version, from Debian's packages, run under qemu-user.

The packages come from the Debian release that ships that Python (3.13: trixie) through a
private apt configuration under `.cache/` (tests/support/debian.py), so the machine's apt state
and dpkg architectures stay untouched; `dpkg -x` unpacks them into a sysroot that
`qemu-aarch64-static -L` serves as the emulated root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import debian
from tests.support.rie import CACHE, Unavailable

# The Debian release whose default Python is each runtime version.
DEBIAN_SUITES = {"3.13": "trixie"}
QEMU = "qemu-aarch64-static"
# A Graviton2 core: what Lambda's arm64 functions run on.
QEMU_CPU = "neoverse-n1"
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
    if suite is None:
        raise Unavailable(f"no Debian release ships Python {version} for aarch64")
    debian.require_tools(f"Debian aarch64 Python {version}")
    debs = debian.download(packages, suite, CACHE.parent / "arm64-apt")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    debian.unpack(debs, tmp)
    (tmp / "lib").symlink_to("usr/lib")  # merged /usr: the loader's /lib path
    (tmp / ".packages").write_text(" ".join(packages))
    shutil.rmtree(root, ignore_errors=True)
    tmp.replace(root)
    return root

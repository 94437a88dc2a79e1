"""Where the project's own cold start goes, and what bearer tokens cost, in callgrind instructions.

Instructions do not move with the machine's load, so small parts can be told apart:

- **Subpackages**: with every third-party and standard module `import handler` loads already
  imported, the subpackages are imported one after another in the order they depend on each
  other (`cities.ops`, `cities.resources`, `cities.db`, `cities.http`, then `handler`, which
  builds the app); each one's count is what it adds to the one before.
- **JWT/OIDC**: `import handler` with and without `JWT_ISSUER`/`JWT_AUDIENCE` set (the verifier
  must stay unimported until a token arrives), then the first token a container verifies (its
  lazy imports of PyJWT and cryptography, the issuer's discovery document and JWKS over HTTP from
  a local issuer, the RS256 check) and the next one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from bench import callgrind

SUBPACKAGES = ("cities.ops", "cities.resources", "cities.db", "cities.http")


def _loaded(env: Mapping[str, str], workdir: str) -> list[str]:
    """The modules `import handler` loads, in the order it starts loading them."""
    code = ("import sys; before = set(sys.modules); import handler; "
            "print(' '.join(m for m in sys.modules if m not in before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=workdir, env=dict(env), check=True)
    return out.stdout.split()


def subpackages(valgrind: str, env: Mapping[str, str], workdir: str) -> dict[str, Any]:
    """Instructions of the modules of each subpackage that `import handler` loads, third-party
    modules already loaded, subpackages in the order they depend on each other; `handler` is
    the rest (the handler module and building the app). One process, one segment each."""
    loaded = _loaded(env, workdir)
    own = [m for m in loaded if m.split(".")[0] in ("cities", "handler")]
    steps = {sub: [m for m in own if m == sub or m.startswith(sub + ".")] for sub in SUBPACKAGES}
    steps["handler"] = ["handler"]
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % [
        m for m in loaded if m not in own]
    for modules in steps.values():
        code += f"{callgrind.MARK}\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
    code += callgrind.MARK  # the last segment is the interpreter's shutdown
    counts = callgrind.segments(valgrind, [sys.executable, "-c", code], workdir, dict(env))
    parts = dict(zip(steps, counts[1:-1], strict=True))  # after start-up and the preload
    return {"instructions": parts, "project": sum(parts.values()),
            "modules": {sub: len(modules) for sub, modules in steps.items()}}


# One process: `import handler` (OIDC configured), the lazy imports, then two tokens.
_TOKENS = f"""import sys
import handler
{callgrind.MARK}
from cities.http import jwt_auth
import jwt, jwt.algorithms
{callgrind.MARK}
for token in sys.argv[1:]:
    assert jwt_auth.verified_subject(token, handler.app.config) == "bench"
    {callgrind.MARK}
"""


def jwt_costs(valgrind: str, env: Mapping[str, str], workdir: str) -> dict[str, Any]:
    """Cold import with and without OIDC, and the first and next tokens' instructions."""
    from tests.support.oidc import SigningKey, running_issuer

    def run(code: str, extra: Mapping[str, str], *args: str) -> list[int]:
        return callgrind.segments(valgrind, [sys.executable, "-c", code, *args], workdir,
                                  {**env, **extra})

    with running_issuer(SigningKey("bench-key")) as issuer:
        oidc = {"JWT_ISSUER": issuer.url, "JWT_AUDIENCE": issuer.settings()["JWT_AUDIENCE"]}
        plain = run(f"import handler\n{callgrind.MARK}", {})[0]
        loaded = subprocess.run(
            [sys.executable, "-c", "import sys, handler; print('jwt' in sys.modules)"],
            capture_output=True, text=True, cwd=workdir, env={**env, **oidc}, check=True,
        ).stdout.strip() == "True"
        with_oidc, lazy, first, second, _ = run(
            _TOKENS, oidc, *(issuer.token(sub="bench") for _ in range(2)))
    return {
        "import_handler": plain, "import_handler_with_oidc": with_oidc,
        "verifier_imported_at_init": loaded, "lazy_imports": lazy,
        "first_token": lazy + first, "next_token": second,
    }


def bench_cold_parts(env: Mapping[str, str], workdir: str) -> dict[str, Any] | None:
    """Both measurements, or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = {**env, "PYTHONHASHSEED": "0"}  # the same hashes, so the same count, run after run
    return {"subpackages": subpackages(valgrind, env, workdir),
            "jwt": jwt_costs(valgrind, env, workdir)}

"""The served OpenAPI document passes Spectral's OpenAPI ruleset (`.spectral.yaml`), as a team
linting its API in CI would run it: no errors, and no warnings beyond the ones turned off there
with their reasons. Spectral compiles `pattern`s without ECMA's `u` flag."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spectral(document: dict, tmp_path: Path) -> list[dict]:
    """Spectral's findings (every severity) for `document`, by the pinned CLI."""
    subprocess.run(["make", "--no-print-directory", "node_modules/.installed"], cwd=ROOT,
                   check=True)
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False))
    result = subprocess.run(
        ["npx", "--no-install", "spectral", "lint", "--ruleset", ".spectral.yaml",
         "--format", "json", "--quiet", str(path)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 2: Spectral itself failed
    return json.loads(result.stdout or "[]")


def test_the_document_passes_spectrals_openapi_ruleset(node, client, tmp_path):
    reply = client.get("/openapi.json")
    findings = spectral(reply.json, tmp_path)
    assert [(f["code"], f["message"], ".".join(map(str, f["path"]))) for f in findings] == []


def test_spectral_refuses_a_pattern_only_a_u_mode_regex_compiles(node, client, tmp_path):
    """The check bites: an astral range in a class, as the published pattern once had."""
    document = client.get("/openapi.json").json
    name = document["components"]["schemas"]["CityInput"]["properties"]["name"]
    name["pattern"] = "^[^\U00013430-\U0001343f]+$"
    errors = [f for f in spectral(document, tmp_path) if f["severity"] == 0]
    assert {f["code"] for f in errors} >= {"oas3-schema"}
    assert any("Invalid regular expression" in f["message"] for f in errors)

"""Drive an older release of the API through every operation it documents, against a database.

Run as a script, never imported by the suite: `PYTHONPATH=<old tree> python -P old_code_smoke.py`
with DATABASE_URL set (tests/support/migration_gate.py does this). It must work with whatever
`cities` package PYTHONPATH names, so it uses only the standard library, `create_app` and the
app's own /openapi.json: each collection is created (twice with one Idempotency-Key, which must
replay), listed, read, replaced, patched and deleted; every other documented GET is fetched.
It prints one JSON report and exits 1 when any request answered other than a release must.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any


def _resolve(document: dict, schema: dict) -> dict:
    """Follow a local `$ref` (the document's components) to the schema it names."""
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _value(name: str, schema: dict, token: str) -> Any:
    """A valid value for a field from its schema: enough for text, number and flag fields."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    text = f"Smoke {name} {token}"
    return text[: schema.get("maxLength", len(text))]


def _body(document: dict, operation: dict, token: str) -> dict:
    """A request body carrying every property the operation's JSON schema declares."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = _resolve(document, content.get("schema", {}))
    return {name: _value(name, _resolve(document, prop), token)
            for name, prop in schema.get("properties", {}).items()}


def _succeeds(operation: dict) -> tuple[int, ...]:
    """The success statuses an operation documents (201 for a create, 204 or 200 for a delete)."""
    return tuple(int(code) for code in operation.get("responses", {}) if code.startswith("2"))


class Smoke:
    """Sends requests through a Flask test client and records each against what it expects."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[dict] = []
        self.covered: set[tuple[str, str]] = set()

    def send(self, method: str, path: str, template: str, expect: tuple[int, ...],
             **kwargs: Any) -> Any:
        response = self.client.open(path, method=method, **kwargs)
        ok = response.status_code in expect
        self.covered.add((template, method.lower()))
        self.requests.append({
            "method": method, "path": path, "status": response.status_code,
            "expected": list(expect), "ok": ok,
            "idempotency_key": "Idempotency-Key" in kwargs.get("headers", {}),
        })
        return response

    def collection(self, document: dict, path: str, item: str | None) -> None:
        """Every write and read a client makes on one collection, idempotent create included."""
        operations = document["paths"][path]
        token = uuid.uuid4().hex[:8]
        body = _body(document, operations["post"], token)
        key = {"Idempotency-Key": f"smoke-{token}"}
        post = _succeeds(operations["post"])
        first = self.send("POST", path, path, post, json=body, headers=key)
        again = self.send("POST", path, path, post, json=body, headers=key)  # the replay
        if first.status_code in post and again.get_json() != first.get_json():
            self.requests[-1]["ok"] = False
            self.requests[-1]["problem"] = "a retried create did not replay the first response"
        self.send("POST", path, path, (409,), json=body)  # the same item again, with no key
        if "get" in operations:
            self.send("GET", path, path, _succeeds(operations["get"]))
            self.send("GET", f"{path}?limit=1", path, _succeeds(operations["get"]))
        created = first.get_json(silent=True) or {}
        if item is None or "id" not in created:
            return
        url = item.replace(item[item.index("{"):item.index("}") + 1], str(created["id"]))
        methods = document["paths"][item]
        if "get" in methods:
            self.send("GET", url, item, _succeeds(methods["get"]))
        if "put" in methods:
            self.send("PUT", url, item, _succeeds(methods["put"]),
                      json=_body(document, methods["put"], token + "p"))
        if "patch" in methods:
            patch = _body(document, methods["patch"], token + "q")
            self.send("PATCH", url, item, _succeeds(methods["patch"]),
                      json=dict(list(patch.items())[:1]))
        if "delete" in methods:
            self.send("DELETE", url, item, _succeeds(methods["delete"]))
            self.send("GET", url, item, (404,))

    def run(self, document: dict) -> None:
        """Collections first (their items follow them), then every other documented GET."""
        paths = document["paths"]
        for path, operations in paths.items():
            if "{" not in path and "post" in operations:
                items = [p for p in paths if p.startswith(path + "/{") and p.count("{") == 1]
                self.collection(document, path, items[0] if items else None)
        for path, operations in paths.items():
            if "{" not in path and "get" in operations and (path, "get") not in self.covered:
                self.send("GET", path, path, _succeeds(operations["get"]))

    def missed(self, document: dict) -> list[str]:
        """Documented operations no request reached: the smoke must cover every route."""
        return sorted(f"{method.upper()} {path}" for path, ops in document["paths"].items()
                      for method in ops if method in ("get", "post", "put", "patch", "delete")
                      and (path, method) not in self.covered)


def main() -> int:
    from cities import create_app  # the release on PYTHONPATH, not the checkout running this

    app = create_app()  # configured by the environment, as a deployed release is
    client = app.test_client()
    document = client.get("/openapi.json").get_json()
    smoke = Smoke(client)
    smoke.run(document)
    missed = smoke.missed(document)
    failed = [r for r in smoke.requests if not r["ok"]]
    print(json.dumps({"requests": smoke.requests, "failed": failed, "missed": missed}))
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())

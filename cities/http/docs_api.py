"""The API's own interactive docs: Swagger UI at `/docs`, and a small index at `/`.

Swagger UI is the page FastAPI users know, and it runs "try it out" calls and bearer keys from the
browser. Its files come from the pinned `flask-swagger-ui` wheel (a copy of the Swagger UI
distribution, never imported: only its `dist` folder is read) and are served by this app, so the
page works offline and behind any URL prefix: every URL in it is relative. Nothing is looked up,
read or compressed before the first request for it, so Lambda's init phase does not pay for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, redirect, request

bp = Blueprint("docs", __name__)

# Only its own files: Swagger UI needs no inline script or style, no other origin, no frames.
# `data:` images are icons inside swagger-ui.css.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Asset URLs carry a version (`asset_version()`), so a browser may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"
OWN_ASSETS = Path(__file__).parent / "docs_assets"
_MIMETYPES = {".js": "text/javascript", ".css": "text/css"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cities API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/assets/{version}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/{version}/swagger-ui-bundle.js"></script>
<script src="docs/assets/{version}/swagger-initializer.js"></script>
</body>
</html>
"""


@cache
def _swagger_dist() -> Path:
    spec = importlib.util.find_spec("flask_swagger_ui")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("flask-swagger-ui is not installed (requirements.txt pins it)")
    return Path(next(iter(spec.submodule_search_locations))) / "dist"


# What the page loads: Swagger UI's bundle and CSS, and our initializer.
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js")


def _asset_path(name: str) -> Path:
    return (OWN_ASSETS if name == "swagger-initializer.js" else _swagger_dist()) / name


@cache
def asset_version() -> str:
    """Swagger UI's version and a digest of our initializer: a new URL whenever either changes."""
    swagger = (_swagger_dist() / "VERSION").read_text().strip()
    own = (OWN_ASSETS / "swagger-initializer.js").read_bytes()
    return f"{swagger}-{hashlib.sha256(own).hexdigest()[:10]}"


@cache
def _asset(name: str) -> tuple[bytes, str]:
    """One of `ASSETS`, read once per container: its bytes and media type."""
    path = _asset_path(name)
    return path.read_bytes(), _MIMETYPES[path.suffix]


@cache
def _gzipped(name: str) -> bytes:
    """Compressed once per container (the bundle is large: docs/benchmarks.md, Design
    measurements), then kept."""
    import gzip  # nothing else imports it: keep it out of Lambda's init

    return gzip.compress(_asset(name)[0], compresslevel=9, mtime=0)


def passes_binary_bodies() -> bool:
    """False behind an API Gateway REST API, which turns a base64 (binary) body back into bytes
    only when the API lists binary media types; serverless-wsgi base64-encodes any gzip body.

    HTTP APIs (both payload versions), Function URLs and ALBs always decode it, and a local
    server has no event at all. REST API events are the ones with neither `version` nor `elb`.
    """
    event = request.environ.get("serverless.event")
    if not isinstance(event, dict) or event.get("version"):
        return True
    return bool((event.get("requestContext") or {}).get("elb"))


@bp.get("/")
def index() -> Response:
    """Where to go from the API's root; browsers asking for HTML are sent to the docs page."""
    root = request.script_root
    preferred = request.accept_mimetypes.best_match(("application/json", "text/html"))
    if preferred == "text/html":
        response = redirect(f"{root}/docs", code=302)
    else:
        response = jsonify({
            "name": "cities",
            "description": "CRUD for cities, backed by PostgreSQL.",
            "links": {
                "docs": f"{root}/docs",
                "openapi": f"{root}/openapi.json",
                "cities": f"{root}/cities",
                "health": f"{root}/health",
            },
        })
    response.vary.add("Accept")
    return response


@bp.get("/docs")
def page() -> Response:
    version = asset_version()  # all the page depends on, so also its ETag
    if request.if_none_match.contains(version):
        response = Response(status=304)
    else:
        response = Response(PAGE.format(version=version), mimetype="text/html")
    response.set_etag(version)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    # Revalidated on each visit: the page names this deployment's asset version.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/docs/assets/<version>/<name>")
def asset(version: str, name: str) -> Response:
    if name not in ASSETS or version != asset_version():
        abort(404)  # before any cache: a client's made-up names must not grow one
    data, mimetype = _asset(name)
    gzipped = passes_binary_bodies() and request.accept_encodings["gzip"] > 0
    response = Response(_gzipped(name) if gzipped else data, mimetype=mimetype)
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Cache-Control"] = IMMUTABLE
    response.vary.add("Accept-Encoding")
    return response

"""Operational routes: a health check that proves the database answers, and the API's own spec."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from cities.db.connection import get_db
from cities.http.errors import SCHEMA_MISSING, ServiceUnavailable
from cities.http.request_log import NO_STORE

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health() -> Response:
    """200 only when the database answers and its schema is at least as new as this code."""
    from cities.db import migrate  # only health needs it: keep it out of Lambda init

    version = migrate.current_version(get_db())
    expected = migrate.latest_version()
    if version < expected:
        raise ServiceUnavailable(SCHEMA_MISSING)
    response = jsonify({"status": "ok", "database": "ok", "schema_version": version})
    # Never kept, not even to revalidate: an "ok" served by a cache would hide an outage.
    response.headers["Cache-Control"] = NO_STORE
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    from cities.http.openapi import document

    return jsonify(document(current_app.config["RESOURCES"]))

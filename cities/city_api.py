"""The `/cities` resource.

Every check that needs no data (auth, media type, size, JSON, fields, id format) runs before the
first query, so a refused request never opens a database connection. Writes commit explicitly
before the response is built: teardown rolls back anything uncommitted and closes the connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from psycopg2 import errors as pgerrors

from . import city_store, idempotency
from .auth import WRITE_METHODS, require_key
from .db import commit, get_db, transaction
from .errors import Conflict, NotFound
from .listing import parse_list_query, parse_positive_id
from .validation import city_fields, detail, read_json_body

bp = Blueprint("cities", __name__)


@bp.before_request
def check_api_key() -> None:
    if request.method in WRITE_METHODS:  # reads are public: no header or setting to look up
        require_key(request.headers.get("Authorization"), current_app.config["API_KEYS"])


def _city_id(raw: str) -> int:
    city_id = parse_positive_id(raw)
    if city_id is None:
        raise NotFound(f"No city with id {raw[:30]!r}.")
    return city_id


def _found(city: dict[str, Any] | None, city_id: int) -> dict[str, Any]:
    if city is None:
        raise NotFound(f"No city with id {city_id}.")
    return city


def _conflict() -> Conflict:
    return Conflict(
        "A city with this name already exists in this state.",
        [detail("name", "is already taken in this state"), detail("state", "see name")],
    )


def _write(operation, *args: Any) -> Any:
    """Run one write in a transaction and commit it; a duplicate (name, state) pair becomes 409."""
    conn = transaction()
    try:
        result = operation(conn, *args)
    except pgerrors.UniqueViolation:
        raise _conflict() from None
    commit()
    return result


@bp.get("/cities", strict_slashes=False)
def list_cities() -> Response:
    query = parse_list_query(request.args)
    rows = city_store.list_cities(get_db(), query, query.limit + 1)
    page = rows[: query.limit]
    response = jsonify(page)
    if len(rows) > query.limit:
        params = {k: v for k, v in request.args.items() if k != "cursor"}
        params["cursor"] = query.cursor_after(page[-1])
        next_url = url_for("cities.list_cities", _external=True) + "?" + urlencode(params)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.post("/cities", strict_slashes=False)
def create_city() -> tuple[Response, int, dict[str, str]]:
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    fields = city_fields(read_json_body(request), partial=False)
    city, replayed = _write(_create, fields, key)
    headers = {"Location": url_for("cities.get_city", city_id=city["id"], _external=True)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(city), 201, headers


def _create(conn, fields: dict[str, str], key: str | None) -> tuple[dict[str, Any], bool]:
    """(city, replayed): a new city, or the one a previous request with this key created."""
    if key is not None:
        replay = idempotency.claim(conn, key, idempotency.request_hash(fields))
        if replay is not None:
            return replay, True
    city = city_store.create_city(conn, fields["name"], fields["state"])
    if key is not None:
        idempotency.remember(conn, key, city)
    return city, False


@bp.get("/cities/<city_id>", strict_slashes=False)
def get_city(city_id: str) -> Response:
    city_id = _city_id(city_id)
    return jsonify(_found(city_store.get_city(get_db(), city_id), city_id))


@bp.put("/cities/<city_id>", strict_slashes=False)
def replace_city(city_id: str) -> Response:
    city_id = _city_id(city_id)
    fields = city_fields(read_json_body(request), partial=False)
    city = _write(city_store.update_city, city_id, fields["name"], fields["state"])
    return jsonify(_found(city, city_id))


@bp.patch("/cities/<city_id>", strict_slashes=False)
def update_city(city_id: str) -> Response:
    city_id = _city_id(city_id)
    fields = city_fields(read_json_body(request), partial=True)
    city = _write(city_store.update_city, city_id, fields.get("name"), fields.get("state"))
    return jsonify(_found(city, city_id))


@bp.delete("/cities/<city_id>", strict_slashes=False)
def delete_city(city_id: str) -> Response:
    city_id = _city_id(city_id)
    return jsonify(_found(_write(city_store.delete_city, city_id), city_id))

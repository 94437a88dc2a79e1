"""The routes of a declared resource: `/<plural>` (list, create) and `/<plural>/<id>` (get,
replace, update, delete), one blueprint per resource, built from its declaration.

Every response that carries one item has its ETag; GET honours If-None-Match (304) and If-Match,
and writes apply only if their If-Match / If-None-Match still hold (cities.http.conditional).

Every check that needs no data (auth, media type, size, JSON, fields, id format) runs before the
first query, so a refused request never opens a database connection. Writes commit explicitly
before the response is built: teardown rolls back anything uncommitted and closes the connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from cities.db import store
from cities.db.connection import get_db, transaction
from cities.http import idempotency, quota
from cities.http.auth import WRITE_METHODS, check_write
from cities.http.conditional import etag, if_match_holds, if_none_match_holds, write_condition
from cities.http.errors import (
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ServiceUnavailable,
)
from cities.http.listing import canonical_id, cursor_after, parse_list_query
from cities.http.public_host import absolute_urls
from cities.http.request_log import shared_reads
from cities.resources.resource import Resource
from cities.resources.validation import body_fields, detail, read_json_body


def check_api_key() -> None:
    """A write's writer, kept for the log line (and quotas); reads are public: no header or
    setting to look up."""
    if request.method in WRITE_METHODS:
        g.writer = check_write(request.headers.get("Authorization"), current_app.config)


def precondition() -> tuple[str, list] | None:
    """This write's precondition as SQL, from If-Match / If-None-Match; with REQUIRE_IF_MATCH
    set, 428 unless If-Match names a version (`*` would let an update be lost); 503 while that
    setting is out of range."""
    if "REQUIRE_IF_MATCH" in current_app.config.get("UNUSABLE_SETTINGS", ()):
        raise ServiceUnavailable(  # a security setting in doubt is not taken to be off
            "Changes to existing items are disabled: the server's If-Match setting is invalid."
        )
    if_match = request.headers.get("If-Match")
    if current_app.config.get("REQUIRE_IF_MATCH") and (
        if_match is None or if_match.strip() == "*"
    ):
        raise PreconditionRequired(
            details=[detail("If-Match", "is required: send the ETag you last read", "header")]
        )
    return write_condition(if_match, request.headers.get("If-None-Match"))


def precondition_failed() -> PreconditionFailed:
    """412, naming the header that did not hold (If-Match unless only If-None-Match was sent)."""
    if "If-Match" in request.headers:
        problem = detail("If-Match", "does not match the current ETag", "header")
    else:
        problem = detail("If-None-Match", "matches the current ETag", "header")
    return PreconditionFailed(details=[problem])


def json_text(value: Any) -> str:
    """`value` as jsonify writes it (app.json, compact: create_app), for a response built
    before its body is known."""
    return f"{current_app.json.dumps(value, separators=(',', ':'))}\n"


def with_etag(row: dict[str, Any]) -> Response:
    response = jsonify(row)
    response.headers["ETag"] = etag(row)
    return response


def shareable(response: Response) -> Response:
    """A successful read of an item or a list, which shared caches may keep for
    SHARED_CACHE_MAX_AGE seconds when that opts in (errors and writes never: `cache_control`)."""
    max_age = current_app.config.get("SHARED_CACHE_MAX_AGE")
    if max_age:
        response.headers["Cache-Control"] = shared_reads(max_age)
    return response


class ResourceViews:
    """The operations on one declared resource, one named method each, so that a traceback and
    a profile name the operation (`ResourceViews.get_item`). A resource that needs one verb to
    differ declares a subclass overriding that method (`Resource(..., views=...)`); the rest,
    and the routes, stay shared. Built once per blueprint, at app creation."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.var = f"{resource.singular}_id"  # /cities/<city_id>: the route template logs show

    def not_found(self, raw: str) -> NotFound:
        """The one wording, the id always in double quotes as it was sent (JSON-escaped)."""
        quoted = json.dumps(raw[:30], ensure_ascii=False)
        return NotFound(f"No {self.resource.singular} with id {quoted}.")

    def item_id_of(self, path: dict[str, str]) -> int:
        """The id of a canonical URL only: `/cities/02` is not `/cities/2` (one URL per item,
        so caches and ETags never see two copies of one city), so it is a 404."""
        raw = path[self.var]
        item_id = canonical_id(raw)
        if item_id is None:
            raise self.not_found(raw)
        return item_id

    def found(self, row: dict[str, Any] | None, item_id: int) -> dict[str, Any]:
        if row is None:
            raise self.not_found(str(item_id))
        return row

    def write(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one write in a transaction and commit it (store.py turns what the database
        refuses into the API's 409s and 422s)."""
        conn = transaction()
        result = operation(conn, self.resource, *args, **kwargs)
        quota.commit(result)  # counted against the writer's quota, if any, in the same message
        return result

    def write_item(
        self, operation: Callable[..., Any], item_id: int, *args: Any, **kwargs: Any
    ) -> Response:
        """A write to one item under the request's precondition: 412 when the item exists but
        the precondition failed (nothing was written), 404 when there is no such item."""
        when = precondition()

        def conditionally(conn: Any, resource: Resource, *args: Any, **kwargs: Any) -> Any:
            row = operation(conn, resource, *args, **kwargs)
            # In the same transaction, so under its timeout; raising leaves nothing to commit.
            if row is None and when is not None and store.exists(conn, resource, item_id):
                raise precondition_failed()
            return row

        row = self.write(conditionally, item_id, *args, when=when, **kwargs)
        return with_etag(self.found(row, item_id))

    def list_items(self) -> Response:
        resource = self.resource
        query = parse_list_query(resource, request.args)
        rows = store.list_page(get_db(), resource, query, query.limit + 1)
        page = rows[: query.limit]
        response = jsonify(page)
        if len(rows) > query.limit:
            params = {k: v for k, v in request.args.items() if k != "cursor"}
            params["cursor"] = cursor_after(resource, query, page[-1])
            external = absolute_urls(request.environ)  # relative when the Host is not trusted
            next_url = url_for(f"{resource.plural}.list", _external=external)
            next_url += "?" + urlencode(params)
            response.headers["Link"] = f'<{next_url}>; rel="next"'
        return shareable(response)

    def create_item(self) -> tuple[Response, int, dict[str, str]]:
        resource = self.resource
        key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
        fields = body_fields(resource, read_json_body(request), partial=False)
        row, replayed = self.write(create_or_replay, fields, key)
        headers = {
            "Location": url_for(f"{resource.plural}.get", **{self.var: row["id"]},
                                _external=absolute_urls(request.environ)),
            "ETag": etag(row),  # a replay's is the first response's: the version created then
        }
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return jsonify(row), 201, headers

    def get_item(self, **path: str) -> Response:
        """What needs no row (the preconditions, the response object) is done before the read:
        on a kept connection the row is already on its way (cities.http.early_read), and only
        what follows its arrival adds to the request's time."""
        item_id = self.item_id_of(path)
        conn = get_db()
        if_match = request.headers.get("If-Match")
        if_none_match = request.headers.get("If-None-Match")
        response = shareable(current_app.response_class(mimetype=current_app.json.mimetype))
        row = self.found(store.get(conn, self.resource, item_id), item_id)
        current = etag(row)
        if if_match is not None and not if_match_holds(if_match, current):
            raise precondition_failed()
        if if_none_match is not None and not if_none_match_holds(if_none_match, current):
            # The 200's cache headers again: a cache refreshes its copy from them (RFC 9111 4.3.4).
            return shareable(Response(status=304, headers={"ETag": current}))
        response.set_data(json_text(row))
        response.headers["ETag"] = current
        return response

    def replace_item(self, **path: str) -> Response:
        item_id = self.item_id_of(path)
        fields = body_fields(self.resource, read_json_body(request), partial=False)
        return self.write_item(store.update, item_id, fields, replace=True)

    def update_item(self, **path: str) -> Response:
        item_id = self.item_id_of(path)
        fields = body_fields(self.resource, read_json_body(request), partial=True)
        return self.write_item(store.update, item_id, fields)

    def delete_item(self, **path: str) -> Response:
        return self.write_item(store.delete, self.item_id_of(path))


# (endpoint, method, the ResourceViews method serving it): the collection's, then the item's.
COLLECTION_ROUTES = (("list", "GET", "list_items"), ("create", "POST", "create_item"))
ITEM_ROUTES = (
    ("get", "GET", "get_item"),
    ("replace", "PUT", "replace_item"),
    ("update", "PATCH", "update_item"),
    ("delete", "DELETE", "delete_item"),
)


def blueprint(resource: Resource) -> Blueprint:
    """The blueprint (named `resource.plural`) serving `resource` through its views: the
    resource's own `views` class if it declares one, else ResourceViews."""
    views = (resource.views or ResourceViews)(resource)
    bp = Blueprint(resource.plural, __name__)
    bp.before_request(check_api_key)
    collection = f"/{resource.plural}"
    item = f"/{resource.plural}/<{views.var}>"
    for path, routes in ((collection, COLLECTION_ROUTES), (item, ITEM_ROUTES)):
        for endpoint, method, name in routes:
            bp.add_url_rule(path, endpoint, getattr(views, name), methods=[method],
                            strict_slashes=False)
    return bp


def create_or_replay(
    conn: Any, resource: Resource, fields: dict[str, Any], key: str | None
) -> tuple[dict[str, Any], bool]:
    """(row, replayed): a new row, or the one a previous request with this key created here."""
    if key is not None:
        replay = idempotency.claim(conn, resource.plural, key, idempotency.request_hash(fields))
        if replay is not None:
            return replay, True
    row = store.create(conn, resource, fields)
    if key is not None:
        idempotency.remember(conn, resource.plural, key, row)
    return row, False

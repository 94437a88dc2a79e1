"""The OpenAPI 3.1 description of the API, served at `/openapi.json`.

Each resource's paths and schemas are derived from its declaration
(cities.resources.resource); the rest is data. The tests check every route and status against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cities.http.errors import BODY_LIMIT, CODES, MESSAGES
from cities.http.idempotency import KEY_PATTERN, TTL
from cities.http.listing import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from cities.http.quota import RATE_LIMIT_FIELDS
from cities.resources.resource import ID, TIMESTAMPS, Resource
from cities.resources.validation import ID_SCHEMA


def _error_example(status: int, message: str | None = None, details: list | None = None) -> dict:
    """The body the API sends for `status`, so /docs shows each error as it really reads."""
    return {"error": {"code": CODES[status], "message": message or MESSAGES[status],
                      "details": details or []}}


def _error_ref(description: str, *, retry: bool = False, extra: dict | None = None,
               example: dict | None = None, status: int | None = None) -> dict:
    """An error response: the shared Error schema with its own example (`status`'s default
    message unless `example` is given)."""
    media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Error"}}
    if example is None and status is not None:
        example = _error_example(status)
    if example is not None:
        media["example"] = example
    response: dict[str, Any] = {"description": description, "content": {"application/json": media}}
    headers = dict(extra or {})
    if retry:
        headers["Retry-After"] = {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "string"},
        }
    if headers:
        response["headers"] = headers
    return response


_ERRORS: dict[str, dict] = {
    "400": _error_ref("Malformed JSON body.", example=_error_example(
        400, "The request body is not valid JSON.")),
    "401": _error_ref(
        "Writes need `Authorization: Bearer <credential>` when the server has API keys or a "
        "token issuer set: an API key, or a JWT from the issuer. `WWW-Authenticate` says why "
        "one was refused (RFC 6750 `error=\"invalid_token\"`, `error_description`).",
        extra={"WWW-Authenticate": {"schema": {"type": "string"}}}, status=401,
    ),
    "403": _error_ref(
        "The token is valid but lacks the write scope (`cities:write` unless the server sets "
        "another); `WWW-Authenticate` says `error=\"insufficient_scope\"` and the scope.",
        extra={"WWW-Authenticate": {"schema": {"type": "string"}}}, status=403,
    ),
    "412": _error_ref("If-Match (or If-None-Match) does not hold: the item has changed since "
                      "that version was read. Nothing was written.", status=412),
    "413": _error_ref(f"Body larger than {BODY_LIMIT}.", status=413),
    "415": _error_ref("Body is not `application/json` (UTF-8).", status=415),
    "428": _error_ref("The server requires If-Match on writes (REQUIRE_IF_MATCH).", status=428),
    "500": _error_ref("Unexpected server error.", status=500),
    "429": _error_ref(
        "The writer has used its quota for this window (WRITE_QUOTA); nothing was written. "
        "Retry after `Retry-After` seconds, the time left in the window.",
        extra={"Retry-After": {"description": "Seconds until the writer's window ends.",
                               "schema": {"type": "string"}}, **RATE_LIMIT_FIELDS},
        status=429,
    ),
    "503": _error_ref("Database unreachable or schema not migrated.", retry=True, status=503),
}


def _responses(
    resource: Resource, success: dict[str, dict], *codes: str, conflict: str | None = None
) -> dict[str, dict]:
    errors = {
        **_ERRORS,
        "404": _error_ref(
            f"No such {resource.singular}, or an id that is not a positive 64-bit integer.",
            example=_error_example(404, f'No {resource.singular} with id "42".'),
        ),
        "409": _error_ref(conflict or " ".join(u.description for u in resource.uniques) or
                          "A unique field's value is already taken.",
                          example=_error_example(409, conflict) if conflict
                          else _conflict_example(resource)),
    }
    invalid = "Invalid content; `details` names each offending field."
    if "415" in codes and resource.references:  # an operation with a body: its ids are checked
        invalid += " " + " ".join(
            f"`{r.field}` must be the id of an existing {r.target.singular}."
            for r in resource.references)
    errors["422"] = _error_ref(invalid, example=_error_example(422, details=[
        {"field": resource.fields[0].name, "in": "body", "message": "must not be empty"}]))
    if "429" in codes:  # a write, counted against its writer's quota: its success says how much
        success = {status: {**response, "headers": {**response.get("headers", {}),
                                                    **RATE_LIMIT_FIELDS}}
                   for status, response in success.items()}
    return {**success, **{code: errors[code] for code in (*codes, "500", "503")}}


def _still_referenced(resource: Resource) -> tuple[tuple[str, ...], str | None]:
    """The 409 a delete may answer (declared RESTRICT references to the resource): its code and
    description, or none."""
    restricting = resource.restricting()
    if not restricting:
        return (), None
    users = " or ".join(f"{r.source.plural} (`{r.field}`)" for r in restricting if r.source)
    return ("409",), f"The {resource.singular} is still referenced by {users}: nothing deleted."


def _conflict_example(resource: Resource) -> dict:
    """The 409 of the resource's first unique index, as the API words it."""
    if not resource.uniques:
        return _error_example(409)
    unique = resource.uniques[0]
    return _error_example(409, unique.message, [
        {"field": field, "in": "body", "message": message} for field, message in unique.details])


_ETAG = {
    "description": "This version of the item (strong). Send it back in `If-Match` to write only "
    "if the item has not changed since, or in `If-None-Match` to get 304 while it has not.",
    "schema": {"type": "string"},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "description": "Apply only if the item is still at one of these versions (ETags), or `*`; "
    "otherwise 412 and nothing changes. Required (428) when the server sets REQUIRE_IF_MATCH.",
    "schema": {"type": "string"},
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "description": "On GET, 304 without a body while the item is at one of these versions "
    "(or `*`); on writes, 412 if it is.",
    "schema": {"type": "string"},
}
_NOT_MODIFIED = {
    "description": "Not modified: the item is still at a version `If-None-Match` names.",
    "headers": {"ETag": _ETAG},
}


def _body(schema: str, example: dict) -> dict:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"},
                                         "example": example}},
    }


def _examples(resource: Resource) -> dict[str, Any]:
    """Each field's first schema example: the body /docs pre-fills (fields without one left out)."""
    return {f.name: f.schema["examples"][0] for f in resource.fields if f.schema.get("examples")}


def _item_example(resource: Resource) -> dict[str, Any]:
    """An item as the API returns it, with its id and timestamps."""
    stamp = "2026-01-15T09:30:00Z"
    return {ID: 1, **_examples(resource), **dict.fromkeys(TIMESTAMPS, stamp)}


# Writes: open (no keys nor issuer set), an API key, or a JWT from the configured issuer.
_SECURED = [{}, {"bearer": []}, {"oidcToken": []}]


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


def _schemas(resource: Resource) -> dict[str, dict]:
    """The resource as returned (`City`), as created or replaced (`CityInput`), as patched."""
    title = resource.title
    example = _examples(resource)
    inputs = {
        f.name: _nullable(dict(f.schema)) if f.nullable else f.schema for f in resource.fields
    }
    for reference in resource.references:
        inputs[reference.field] = {
            **inputs[reference.field],
            "description":
                f"The id of {reference.target.with_article}; one that names none is 422.",
        }
    return {
        title: {
            "type": "object",
            "required": list(resource.column_names),
            "additionalProperties": False,
            "properties": {
                # As published since 1.0.0, without ID_SCHEMA's maximum (the document is kept
                # byte-identical; stating it is a change of the published contract).
                ID: {"type": ID_SCHEMA["type"], "minimum": ID_SCHEMA["minimum"]},
                **inputs,
                **{name: {"type": "string", "format": "date-time"} for name in TIMESTAMPS},
            },
            "examples": [_item_example(resource)],
        },
        f"{title}Input": {
            "type": "object",
            "required": [f.name for f in resource.fields if f.required],
            "additionalProperties": False,
            "properties": inputs,
            **({"examples": [example]} if example else {}),
        },
        f"{title}Patch": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": inputs,
            **({"examples": [dict(list(example.items())[:1])]} if example else {}),
        },
    }


def _paths(resource: Resource) -> dict[str, dict]:
    """`/<plural>` and `/<plural>/{id}`, as the resource's views serve them."""
    return {
        f"/{resource.plural}": {
            "get": _list_operation(resource),
            "post": _create_operation(resource),
        },
        f"/{resource.plural}/{{id}}": {
            "get": _get_operation(resource),
            "put": _replace_operation(resource),
            "patch": _update_operation(resource),
            "delete": _delete_operation(resource),
        },
    }


def _tags(resource: Resource) -> list[str]:
    return [resource.plural]  # /docs groups each resource's operations under its name


def _item_response(resource: Resource, description: str, headers: dict | None = None) -> dict:
    """A response carrying one item, its ETag, and the links a client (or fuzzer) follows next
    on its id."""
    title = resource.title
    links = {
        f"{verb}{title}": {"operationId": f"{verb.lower()}{title}",
                           "parameters": {"id": "$response.body#/id"}}
        for verb in ("Get", "Replace", "Update", "Delete")
    }
    return {
        "description": description,
        "headers": {**(headers or {}), "ETag": _ETAG},
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{title}"}}},
        "links": links,
    }


def _id_param(resource: Resource) -> dict:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"The {resource.singular}'s id; "
        "anything but a positive 64-bit integer is 404.",
        "schema": ID_SCHEMA,
    }


def _list_params(resource: Resource) -> list[dict]:
    """limit, the declared filters, sort and cursor."""
    return [
        {
            "name": "limit",
            "in": "query",
            "description": f"Page size, 1..{MAX_LIMIT}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                       "default": DEFAULT_LIMIT},
        },
        *(
            {"name": f.name, "in": "query", "description": f.description, "schema": f.schema}
            for f in resource.filters
        ),
        {
            "name": "sort",
            "in": "query",
            "schema": {"type": "string", "enum": list(resource.sort_names), "default": ID},
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "Opaque; copy it from the previous page's `Link: rel=\"next\"` URL. "
            "Valid only with the sort and filters it was issued for (else 422).",
            "schema": {"type": "string", "minLength": 18, "maxLength": 1024,
                       "pattern": f"^{CURSOR_PATTERN}$"},
        },
    ]


def _list_operation(resource: Resource) -> dict:
    plural = resource.plural
    page = {
        "description": f"A page of {plural}.",
        "headers": {
            "Link": {
                "description": 'The next page, `<url>; rel="next"`, present when more rows follow.',
                "schema": {"type": "string"},
            }
        },
        "content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": f"#/components/schemas/{resource.title}"},
        }}},
    }
    return {
        "operationId": f"list{resource.title_plural}",
        "tags": _tags(resource),
        "summary": f"List {plural}, one page at a time (keyset pagination).",
        "parameters": _list_params(resource),
        "responses": _responses(resource, {"200": page}, "422"),
    }


def _create_operation(resource: Resource) -> dict:
    singular = resource.singular
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "description": f"Makes retries safe: a repeat within {TTL} returns "
        "the first response; reuse with another body is 422.",
        "schema": {"type": "string", "pattern": f"^{KEY_PATTERN}$"},
    }
    created = _item_response(resource, f"The created {singular}.", {
        "Location": {"description": f"The new {singular}'s URL.", "schema": {"type": "string"}},
        "Idempotent-Replayed": {
            "description": "`true` when this is a replay.",
            "schema": {"type": "string"},
        },
    })
    return {
        "operationId": f"create{resource.title}",
        "tags": _tags(resource),
        "summary": f"Create {resource.with_article}.",
        "security": _SECURED,
        "parameters": [idempotency_key],
        "requestBody": _body(f"{resource.title}Input", _examples(resource)),
        "responses": _responses(resource, {"201": created},
                                "400", "401", "403", "409", "413", "415", "422", "429"),
    }


def _get_operation(resource: Resource) -> dict:
    singular = resource.singular
    return {
        "operationId": f"get{resource.title}",
        "tags": _tags(resource),
        "summary": f"One {singular}.",
        "parameters": [_id_param(resource), _IF_NONE_MATCH, _IF_MATCH],
        "responses": _responses(
            resource,
            {"200": _item_response(resource, f"The {singular}."), "304": _NOT_MODIFIED},
            "404", "412",
        ),
    }


def _write_operation(
    resource: Resource, operation_id: str, summary: str, body_schema: str, example: dict
) -> dict:
    """A conditional write of one item with a body: PUT (replace) or PATCH (update)."""
    return {
        "operationId": operation_id,
        "tags": _tags(resource),
        "summary": summary,
        "security": _SECURED,
        "parameters": [_id_param(resource), _IF_MATCH, _IF_NONE_MATCH],
        "requestBody": _body(body_schema, example),
        "responses": _responses(
            resource,
            {"200": _item_response(resource, f"The updated {resource.singular}.")},
            "400", "401", "403", "404", "409", "412", "413", "415", "422", "428", "429",
        ),
    }


def _replace_operation(resource: Resource) -> dict:
    names = [f.name for f in resource.fields]
    required = [f.name for f in resource.fields if f.required]
    if required == names:
        replaced = f"{_listed(names)} ({'both' if len(names) == 2 else 'all'} required)"
    else:
        replaced = f"{_listed(names)} ({_listed(required) or 'none'} required)"
    return _write_operation(
        resource, f"replace{resource.title}", f"Replace {resource.with_article}'s {replaced}.",
        f"{resource.title}Input", _examples(resource),
    )


def _update_operation(resource: Resource) -> dict:
    names = [f.name for f in resource.fields]
    changed = f"{', '.join(names)}, or both" if len(names) == 2 else f"some of {', '.join(names)}"
    example = _examples(resource)
    return _write_operation(
        resource, f"update{resource.title}", f"Change {resource.with_article}'s {changed}.",
        f"{resource.title}Patch", dict(list(example.items())[1:2] or example.items()),
    )


def _delete_operation(resource: Resource) -> dict:
    referenced, referenced_conflict = _still_referenced(resource)
    return {
        "operationId": f"delete{resource.title}",
        "tags": _tags(resource),
        "summary": f"Delete {resource.with_article}.",
        "security": _SECURED,
        "parameters": [_id_param(resource), _IF_MATCH, _IF_NONE_MATCH],
        "responses": _responses(
            resource, {"200": _item_response(resource, f"The deleted {resource.singular}.")},
            "401", "403", "404", *referenced, "412", "428", "429", conflict=referenced_conflict,
        ),
    }


def _meta_paths() -> dict[str, dict]:
    """The service's own routes (cities.http.meta_api): /health and this document."""
    health = {
        "description": "Database reachable and schema current.",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"const": "ok"},
                "database": {"type": "string"},
                "schema_version": {"type": "integer"},
            },
        }}},
    }
    return {
        "/health": {"get": {
            "operationId": "health",
            "tags": ["meta"],
            "summary": "Liveness with a database round trip.",
            "responses": {"200": health, "503": _ERRORS["503"], "500": _ERRORS["500"]},
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi",
            "tags": ["meta"],
            "summary": "This document.",
            "responses": {"200": {
                "description": "The OpenAPI 3.1 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }},
        }},
    }


def _error_schema() -> dict:
    """The one error shape (cities.http.errors): its codes are those errors.CODES lists."""
    detail = {
        "type": "object",
        "properties": {
            "field": {"type": "string"},
            "in": {"enum": ["body", "query", "header"]},
            "message": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "enum": list(CODES.values())},
                "message": {"type": "string"},
                "details": {"type": "array", "items": detail},
            },
        }},
    }


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key (`API_KEYS`), sent as the bearer token."},
    "oidcToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "A JWT from the server's OIDC issuer "
                  "(`JWT_ISSUER`, audience `JWT_AUDIENCE`), signed RS256, ES256 or "
                  "EdDSA, with the scope `cities:write`."},
}


def document(resources: Iterable[Resource]) -> dict[str, Any]:
    """The whole document: each resource's paths and schemas, then the service's own."""
    resources = list(resources)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource in resources:
        paths.update(_paths(resource))
        schemas.update(_schemas(resource))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cities",
            "version": "1.0.0",
            "description": "CRUD for cities, backed by PostgreSQL. Errors share one JSON shape.",
        },
        "tags": [
            *({"name": r.plural, "description": f"The {r.singular} resource."} for r in resources),
            {"name": "meta", "description": "The service itself: health and this document."},
        ],
        "paths": {**paths, **_meta_paths()},
        "components": {
            "securitySchemes": _SECURITY_SCHEMES,
            "schemas": {**schemas, "Error": _error_schema()},
        },
    }

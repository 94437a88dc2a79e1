"""The OpenAPI 3.1 description of the API, served at `/openapi.json`.

Kept as data beside the code it describes; the tests check every route and status against it.
"""

from __future__ import annotations

from typing import Any

from .idempotency import KEY_PATTERN, TTL
from .listing import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, SORTS
from .validation import MAX_TEXT_LENGTH, SEARCH_PATTERN, TEXT_PATTERN

# What the API accepts for a name or state: cities.validation's rule, whose pattern this is.
# What it returns is the stored form, which matches it too.
_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": TEXT_PATTERN,
    "description": "Stored in Unicode NFKC, with whitespace and invisible format characters "
    "trimmed from both ends. Refused: control, bidirectional and invisible format characters "
    "inside (ZWNJ and ZWJ are kept), line separators, and text that normalization makes longer "
    "than 100 characters.",
}
_SEARCH = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": SEARCH_PATTERN,
}


def _error_ref(description: str, *, retry: bool = False, extra: dict | None = None) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
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
    "400": _error_ref("Malformed JSON body."),
    "401": _error_ref(
        "Writes need `Authorization: Bearer <key>` when the server has API keys set.",
        extra={"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "404": _error_ref("No such city, or an id that is not a positive 64-bit integer."),
    "409": _error_ref("Another city already has this name in this state (case-insensitive)."),
    "413": _error_ref("Body larger than 64 KiB."),
    "415": _error_ref("Body is not `application/json` (UTF-8)."),
    "422": _error_ref("Invalid content; `details` names each offending field."),
    "500": _error_ref("Unexpected server error."),
    "503": _error_ref("Database unreachable or schema not migrated.", retry=True),
}


def _responses(success: dict[str, dict], *codes: str) -> dict[str, dict]:
    return {**success, **{code: _ERRORS[code] for code in (*codes, "500", "503")}}


# Where a returned city leads next: lets clients (and stateful fuzzers) chain calls on its id.
_CITY_LINKS = {
    name: {"operationId": operation, "parameters": {"id": "$response.body#/id"}}
    for name, operation in (
        ("GetCity", "getCity"),
        ("ReplaceCity", "replaceCity"),
        ("UpdateCity", "updateCity"),
        ("DeleteCity", "deleteCity"),
    )
}


def _city_response(description: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/City"}}},
        "links": _CITY_LINKS,
    }
    if headers:
        response["headers"] = headers
    return response


def _body(schema: str) -> dict:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The city's id; anything but a positive 64-bit integer is 404.",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
}

_SECURED = [{}, {"bearer": []}]


def _update_op(operation_id: str, summary: str, body_schema: str) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": _SECURED,
        "parameters": [_ID],
        "requestBody": _body(body_schema),
        "responses": _responses(
            {"200": _city_response("The updated city.")},
            "400", "401", "404", "409", "413", "415", "422",
        ),
    }


def document() -> dict[str, Any]:
    item_ops = {
        "get": {
            "operationId": "getCity",
            "summary": "One city.",
            "parameters": [_ID],
            "responses": _responses({"200": _city_response("The city.")}, "404"),
        },
        "put": _update_op("replaceCity", "Replace a city's name and state (both required).",
                          "CityInput"),
        "patch": _update_op("updateCity", "Change a city's name, state, or both.", "CityPatch"),
        "delete": {
            "operationId": "deleteCity",
            "summary": "Delete a city.",
            "security": _SECURED,
            "parameters": [_ID],
            "responses": _responses({"200": _city_response("The deleted city.")}, "401", "404"),
        },
    }
    list_params = [
        {
            "name": "limit",
            "in": "query",
            "description": f"Page size, 1..{MAX_LIMIT}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                       "default": DEFAULT_LIMIT},
        },
        {
            "name": "state",
            "in": "query",
            "description": "Only cities in this state (exact, case-insensitive, trimmed).",
            "schema": _TEXT,
        },
        {
            "name": "q",
            "in": "query",
            "description": "Case-insensitive substring of the name; `%`, `_`, `\\` are literal.",
            "schema": _SEARCH,
        },
        {
            "name": "sort",
            "in": "query",
            "schema": {"type": "string", "enum": list(SORTS), "default": "id"},
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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cities",
            "version": "1.0.0",
            "description": "CRUD for cities, backed by PostgreSQL. Errors share one JSON shape.",
        },
        "paths": {
            "/cities": {
                "get": {
                    "operationId": "listCities",
                    "summary": "List cities, one page at a time (keyset pagination).",
                    "parameters": list_params,
                    "responses": _responses(
                        {
                            "200": {
                                "description": "A page of cities.",
                                "headers": {
                                    "Link": {
                                        "description": 'The next page, `<url>; rel="next"`, '
                                        "present when more rows follow.",
                                        "schema": {"type": "string"},
                                    }
                                },
                                "content": {
                                    "application/json": {
                                        "schema": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/City"},
                                        }
                                    }
                                },
                            }
                        },
                        "422",
                    ),
                },
                "post": {
                    "operationId": "createCity",
                    "summary": "Create a city.",
                    "security": _SECURED,
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "description": f"Makes retries safe: a repeat within {TTL} returns "
                            "the first response; reuse with another body is 422.",
                            "schema": {"type": "string", "pattern": f"^{KEY_PATTERN}$"},
                        }
                    ],
                    "requestBody": _body("CityInput"),
                    "responses": _responses(
                        {
                            "201": _city_response(
                                "The created city.",
                                {
                                    "Location": {"description": "The new city's URL.",
                                                 "schema": {"type": "string"}},
                                    "Idempotent-Replayed": {
                                        "description": "`true` when this is a replay.",
                                        "schema": {"type": "string"},
                                    },
                                },
                            )
                        },
                        "400", "401", "409", "413", "415", "422",
                    ),
                },
            },
            "/cities/{id}": item_ops,
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness with a database round trip.",
                    "responses": {
                        "200": {
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
                        },
                        "503": _ERRORS["503"],
                        "500": _ERRORS["500"],
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "City": {
                    "type": "object",
                    "required": ["id", "name", "state", "created_at", "updated_at"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "integer", "minimum": 1},
                        "name": _TEXT,
                        "state": _TEXT,
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    },
                },
                "CityInput": {
                    "type": "object",
                    "required": ["name", "state"],
                    "additionalProperties": False,
                    "properties": {"name": _TEXT, "state": _TEXT},
                },
                "CityPatch": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": False,
                    "properties": {"name": _TEXT, "state": _TEXT},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "details"],
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": [
                                        "bad_request", "unauthorized", "not_found",
                                        "method_not_allowed", "conflict", "payload_too_large",
                                        "unsupported_media_type", "validation_failed",
                                        "service_unavailable", "internal_error",
                                    ],
                                },
                                "message": {"type": "string"},
                                "details": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "field": {"type": "string"},
                                            "in": {"enum": ["body", "query", "header"]},
                                            "message": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        }
                    },
                },
            },
        },
    }

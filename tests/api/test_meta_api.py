"""`/health` proves a database round trip; `/openapi.json` describes the API as it behaves."""

from __future__ import annotations

import jsonschema
import psycopg2
import pytest
from openapi_spec_validator import validate

from cities.db.migrate import latest_version, migrate
from tests.conftest import served_operations


def test_health_is_ok_after_a_database_round_trip(client):
    reply = client.get("/health")
    assert reply.status == 200
    assert reply.json == {"status": "ok", "database": "ok", "schema_version": latest_version()}


def test_health_is_503_when_the_schema_is_behind_the_code(client_for, empty_database_url):
    migrate(empty_database_url)
    conn = psycopg2.connect(empty_database_url)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM schema_migrations WHERE version = %s", (latest_version(),))
    conn.close()
    reply = client_for(DATABASE_URL=empty_database_url).get("/health")
    assert reply.status == 503
    message = reply.json["error"]["message"]
    assert "run the migrate function" in message
    assert "`make migrate` locally" in message  # commands that exist in this checkout
    assert "`make migrate-deployed STAGE=<stage>` in AWS" in message


@pytest.fixture
def spec(client):
    reply = client.get("/openapi.json")
    assert reply.status == 200
    return reply.json


def test_openapi_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_openapi_describes_every_route_and_method(spec, app):
    documented = {
        (path, method.upper()) for path, ops in spec["paths"].items() for method in ops
    }
    served = served_operations(app)
    assert documented == served


def test_openapi_lists_the_contract_status_codes(spec):
    def codes(path: str, method: str) -> set[str]:
        return set(spec["paths"][path][method]["responses"])

    assert {"201", "400", "409", "413", "415", "422"} <= codes("/cities", "post")
    assert {"200", "422"} <= codes("/cities", "get")
    assert {"200", "404"} <= codes("/cities/{id}", "get")
    for method in ("put", "patch"):
        assert {"200", "404", "409", "422"} <= codes("/cities/{id}", method)
    assert {"200", "404"} <= codes("/cities/{id}", "delete")
    assert {"200", "503"} <= codes("/health", "get")


def schema_for(spec: dict, name: str, *, many: bool = False) -> dict:
    ref = {"$ref": f"#/components/schemas/{name}"}
    root = {"type": "array", "items": ref} if many else dict(ref)
    return {**root, "components": spec["components"]}


def test_responses_match_the_documented_schemas(client, spec):
    created = client.post("/cities", {"name": "Turin", "state": "Piedmont"})
    jsonschema.validate(created.json, schema_for(spec, "City"))
    listed = client.get("/cities")
    jsonschema.validate(listed.json, schema_for(spec, "City", many=True))
    errors = [
        client.post("/cities", "{"),
        client.post("/cities", {"name": 1}),
        client.post("/cities", {"name": "Turin", "state": "PIEDMONT"}),
        client.get("/cities/0"),
        client.delete("/cities"),
        client.post("/cities", "x", headers={"content-type": "text/plain"}),
        client.post("/cities", "x" * 70_000),
    ]
    assert [e.status for e in errors] == [400, 422, 409, 404, 405, 415, 413]
    for error in errors:
        jsonschema.validate(error.json, schema_for(spec, "Error"))


def test_openapi_needs_no_database(client_for):
    reply = client_for(DATABASE_URL=None).get("/openapi.json")
    assert reply.status == 200
    assert reply.json["info"]["title"] == "cities"


def test_operations_are_grouped_by_resource(spec):
    tags = {op["operationId"]: op["tags"] for path in spec["paths"].values()
            for op in path.values()}
    assert tags["createCity"] == tags["listCities"] == tags["deleteCity"] == ["cities"]
    assert tags["health"] == tags["openapi"] == ["meta"]
    assert {t["name"] for t in spec["tags"]} == {"cities", "meta"}


def test_docs_prefill_a_real_city(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["CityInput"]["examples"] == [{"name": "Lyon", "state": "Auvergne-Rhône-Alpes"}]
    create = spec["paths"]["/cities"]["post"]["requestBody"]["content"]["application/json"]
    assert create["example"] == {"name": "Lyon", "state": "Auvergne-Rhône-Alpes"}
    for name in ("City", "CityInput", "CityPatch"):
        for example in schemas[name]["examples"]:
            jsonschema.validate(example, {**schemas[name], "components": spec["components"]})


def test_each_error_response_has_its_own_real_example(spec):
    """The example of each status carries that status's code, and is a valid Error."""
    from cities.http.errors import CODES

    error_schema = {"$ref": "#/components/schemas/Error", "components": spec["components"]}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                example = response["content"]["application/json"]["example"]
                jsonschema.validate(example, error_schema)
                assert example["error"]["code"] == CODES[int(status)], (path, method, status)
    responses = spec["paths"]["/cities"]["post"]["responses"]
    conflict = responses["409"]["content"]["application/json"]["example"]["error"]
    assert conflict["message"] == "A city with this name already exists in this state."
    assert [d["field"] for d in conflict["details"]] == ["name", "state"]
    invalid = responses["422"]["content"]["application/json"]["example"]["error"]
    assert invalid["details"] == [{"field": "name", "in": "body", "message": "must not be empty"}]
    stale = spec["paths"]["/cities/{id}"]["put"]["responses"]["412"]
    assert stale["content"]["application/json"]["example"]["error"]["code"] == "precondition_failed"

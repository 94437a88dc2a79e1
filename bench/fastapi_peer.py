"""The usual alternative, for comparison: a minimal FastAPI + Mangum app with the same routes.

Same SQL, same connection per request (psycopg2, opened and closed in each handler), pydantic
bodies; none of the project's extra rules (cursors, error shapes, URL fixing). It is a peer to
measure against, not a second implementation to maintain.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg2
from fastapi import FastAPI, HTTPException, Response
from mangum import Mangum
from pydantic import BaseModel, Field

COLUMNS = "id, name, state, created_at, updated_at"

app = FastAPI()


class CityIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=1, max_length=100)


def _row(row: tuple[Any, ...] | None) -> dict[str, Any]:
    if row is None:
        raise HTTPException(status_code=404, detail="not found")
    city_id, name, state, created_at, updated_at = row
    return {
        "id": city_id,
        "name": name,
        "state": state,
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
    }


def _run(sql: str, params: tuple[Any, ...], many: bool = False) -> Any:
    conn = psycopg2.connect(
        os.environ["DATABASE_URL"], connect_timeout=5, application_name="cities-peer"
    )
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if many else cur.fetchone()
    finally:
        conn.close()


@app.get("/cities")
def list_cities(limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
    rows = _run(
        f"SELECT {COLUMNS} FROM city WHERE id > %s ORDER BY id LIMIT %s", (after, limit), True
    )
    return [_row(r) for r in rows]


@app.post("/cities", status_code=201)
def create_city(city: CityIn, response: Response) -> dict[str, Any]:
    row = _run(
        f"INSERT INTO city (name, state) VALUES (%s, %s) RETURNING {COLUMNS}",
        (city.name.strip(), city.state.strip()),
    )
    response.headers["Location"] = f"/cities/{row[0]}"
    return _row(row)


@app.get("/cities/{city_id}")
def get_city(city_id: int) -> dict[str, Any]:
    return _row(_run(f"SELECT {COLUMNS} FROM city WHERE id = %s", (city_id,)))


@app.put("/cities/{city_id}")
def replace_city(city_id: int, city: CityIn) -> dict[str, Any]:
    return _row(
        _run(
            f"UPDATE city SET name = %s, state = %s, updated_at = now() WHERE id = %s "
            f"RETURNING {COLUMNS}",
            (city.name.strip(), city.state.strip(), city_id),
        )
    )


@app.delete("/cities/{city_id}")
def delete_city(city_id: int) -> dict[str, Any]:
    return _row(_run(f"DELETE FROM city WHERE id = %s RETURNING {COLUMNS}", (city_id,)))


@app.get("/health")
def health() -> dict[str, str]:
    _run("SELECT 1", ())
    return {"status": "ok"}


api = Mangum(app, lifespan="off")

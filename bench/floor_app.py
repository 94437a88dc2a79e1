"""The cold-init floor: the same stack doing nothing extra.

One Flask route behind serverless-wsgi, importing psycopg2, as a Lambda module would. Importing
`handler` costs at least this; what it costs beyond is the project's own overhead.
"""

from __future__ import annotations

from typing import Any

import psycopg2  # noqa: F401 - part of the floor: every database-backed handler imports it
import serverless_wsgi
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/cities/<int:city_id>")
def get_city(city_id: int) -> Any:
    return jsonify({"id": city_id})


def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return serverless_wsgi.handle_request(app, event, context)

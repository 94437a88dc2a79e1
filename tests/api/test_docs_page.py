"""`/docs` in a real browser: the system's headless Chromium, driven by Playwright, loads the page
from the app behind a real HTTP server, shows every operation of the OpenAPI document, and
creates, updates and deletes a city through "Try it out" with a bearer key from the Authorize
dialog. Every request the browser makes is recorded: none may leave 127.0.0.1, and the page's CSP
must block nothing.

Set DOCS_SCREENSHOT=docs/docs-page.png to refresh the screenshot in docs/api.md from this test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from cities import create_app
from tests.conftest import local_server
from tests.deploy.test_offline import run_offline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)",
)
# As root (CI) Chromium needs --no-sandbox; the rest keeps it from calling home, and no host
# name resolves: a request for anything but 127.0.0.1 fails (and is still recorded).
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
API_KEY = "docs-page-key"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Swagger UI reports CSP violations itself only as console errors: collect them from the page too.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@dataclass
class Deployment:
    url: str  # the API's root, as the browser reaches it
    api_key: str


@pytest.fixture(params=["rest-api-stage-prefix", "make-offline"])
def deployment(request, databases, tmp_path: Path) -> Iterator[Deployment]:
    """A deployed stage with API keys: the app under `/dev` (SCRIPT_NAME, as on a REST API
    stage), or serverless-offline running handler.api for HTTP API events (`make offline`)."""
    if request.param == "make-offline":
        request.getfixturevalue("node")  # the emulator runs under Node
        for url in run_offline(databases.create(), tmp_path):
            yield Deployment(url, "offline-key")
        return
    database_url = request.getfixturevalue("database_url")
    request.getfixturevalue("sql")  # an empty table
    app = create_app({"DATABASE_URL": database_url, "API_KEYS": (API_KEY,)})
    with local_server(app, "/dev") as url:
        yield Deployment(url, API_KEY)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a new, empty profile
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


def get_json(url: str) -> Any:
    with urlopen(url) as response:
        return json.load(response)


def documented_operations(api_url: str) -> set[tuple[str, str]]:
    spec = get_json(f"{api_url}/openapi.json")
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


class Recorder:
    """Every URL the browser requested, and every error it reported, for one page."""

    def __init__(self, browser: Any) -> None:
        self.requested: list[str] = []
        self.problems: list[str] = []
        browser.on("request", lambda req: self.requested.append(req.url))
        self.page = browser.new_page()
        self.page.on("console",
                     lambda msg: self.problems.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.add_init_script(RECORD_CSP_VIOLATIONS)

    def assert_only_local_and_allowed(self) -> None:
        assert self.page.evaluate("window.__cspViolations") == []
        hosts = {urlsplit(url).hostname for url in self.requested if not url.startswith("data:")}
        assert hosts == {"127.0.0.1"}, self.requested
        assert any(url.endswith("/swagger-ui-bundle.js") for url in self.requested)


def shown_operations(page: Any, expected: int) -> set[tuple[str, str]]:
    """(METHOD, path) of each operation on the page, once the `expected` number have rendered."""
    blocks = page.locator(".opblock")
    blocks.nth(expected - 1).wait_for()
    return {
        (block.locator(".opblock-summary-method").inner_text().strip(),
         block.locator(".opblock-summary-path").get_attribute("data-path"))
        for block in blocks.all()
    }


def operation_block(page: Any, operation_id: str) -> Any:
    """An operation's block: Swagger UI ids it `operations-<tag>-<operationId>`."""
    return page.locator(f'.opblock[id^="operations-"][id$="-{operation_id}"]')


def execute(page: Any, operation_id: str, params: dict[str, Any],
            body: dict[str, Any] | None = None, expect: str = "200") -> Any:
    """Open an operation, "Try it out" with these values, execute: the expected status cell."""
    block = operation_block(page, operation_id)
    block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    for name, value in params.items():
        block.locator(f'[data-param-name="{name}"] input').fill(str(value))
    if body is not None:
        block.locator("textarea.body-param__text").fill(json.dumps(body))
    block.locator("button.execute").click()
    return block.locator(".live-responses-table tbody .response-col_status").filter(
        has_text=expect)


def test_docs_page_shows_every_operation_and_writes_with_a_key(deployment, browser) -> None:
    recorder = Recorder(browser)
    page = recorder.page
    page.goto(f"{deployment.url}/docs")
    operations = documented_operations(deployment.url)
    assert shown_operations(page, len(operations)) == operations

    create = operation_block(page, "createCity")
    create.locator(".opblock-summary").click()
    create.locator(".try-out__btn").click()
    create.locator("textarea.body-param__text").fill(
        json.dumps({"name": "Trieste", "state": "Friuli-Venezia Giulia"}))

    # Without a key the API refuses the write, and the page shows it.
    create.locator("button.execute").click()
    status = create.locator(".live-responses-table tbody .response-col_status")
    status.filter(has_text="401").wait_for()
    assert get_json(f"{deployment.url}/cities") == []

    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    # One form per scheme: the API key's (`bearer`) beside the token's (`oidcToken`).
    api_key = dialog.locator("form").filter(has_text="bearer (http, Bearer)")
    api_key.locator("input").fill(deployment.api_key)
    api_key.locator("button.authorize").click()
    api_key.locator("button.btn-done").click()

    create.locator("button.btn-clear").click()
    create.locator("button.execute").click()
    status.filter(has_text="201").wait_for()
    request_url = create.locator(".request-url pre").inner_text()
    assert request_url == f"{deployment.url}/cities"  # any prefix kept: the same deployment
    listed = get_json(f"{deployment.url}/cities")
    assert [(c["name"], c["state"]) for c in listed] == [("Trieste", "Friuli-Venezia Giulia")]

    if os.environ.get("DOCS_SCREENSHOT") and "/dev" in deployment.url:
        # From the top down to the 201, as a reader sees it.
        bottom = create.locator(".live-responses-table").evaluate(
            "table => table.getBoundingClientRect().bottom + window.scrollY")
        page.screenshot(path=os.environ["DOCS_SCREENSHOT"], full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 16})

    city_id = listed[0]["id"]
    execute(page, "updateCity", {"id": city_id}, {"state": "FVG"}).wait_for()
    assert get_json(f"{deployment.url}/cities/{city_id}")["state"] == "FVG"
    execute(page, "deleteCity", {"id": city_id}).wait_for()
    assert get_json(f"{deployment.url}/cities") == []

    recorder.assert_only_local_and_allowed()
    # The browser logs the refused write (the first execute) as a failed resource: nothing else.
    assert [problem.split(" (")[0] for problem in recorder.problems] == [
        "Failed to load resource: the server responded with a status of 401"
    ]


def test_a_browser_at_the_root_of_make_run_lands_on_the_docs(database_url, sql, browser) -> None:
    """`make run` serves the app at the root, without keys: `/` sends a browser to `/docs`,
    where the first page of a listing shows its `Link` to the next."""
    sql("INSERT INTO city (name, state) VALUES ('Matera', 'Basilicata'), ('Bari', 'Apulia')")
    app = create_app({"DATABASE_URL": database_url})
    with local_server(app, "") as url:
        recorder = Recorder(browser)
        page = recorder.page
        page.goto(f"{url}/")
        assert page.url == f"{url}/docs"
        operations = documented_operations(url)
        assert shown_operations(page, len(operations)) == operations

        execute(page, "listCities", {"limit": 1}).wait_for()
        response = operation_block(page, "listCities").locator(".live-responses-table tbody")
        assert '"Matera"' in response.inner_text() and '"Bari"' not in response.inner_text()
        assert re.search(rf'link: <{re.escape(url)}/cities\?limit=1&[^>]*cursor=[^>]+>; rel="next"',
                         response.inner_text())
        recorder.assert_only_local_and_allowed()
        assert recorder.problems == []

"""The dashboard's static routes: served without the token, with a strict content security
policy, while every other path still needs the token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from admin.dashboard import PATHS
from admin_kit import ANON, Api, start_api
from producer.config import Settings


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """A ready admin API on fresh topics."""
    client, api = await start_api(settings)
    try:
        yield api
    finally:
        await client.close()


async def test_the_dashboard_files_are_served_without_the_token(api: Api) -> None:
    """index.html, app.js and style.css answer 200 without a token, as text, under a CSP
    that allows only the page's own script, style and origin."""
    for path, content_type, marker in (
        ("/dashboard/", "text/html", '<script src="app.js"'),
        ("/dashboard/app.js", "text/javascript", "sessionStorage"),
        ("/dashboard/style.css", "text/css", "--accent"),
    ):
        response = await api.client.get(path)
        assert response.status == 200, path
        assert response.content_type == content_type
        assert marker in await response.text()
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    response = await api.client.get("/dashboard", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (308, "/dashboard/")
    assert "/dashboard" in PATHS


async def test_only_gets_of_the_dashboard_files_skip_the_token(api: Api) -> None:
    """Other paths under /dashboard, other methods on the dashboard's paths, and the JSON API
    still answer 401 without a token."""
    for method, path in (
        ("GET", "/dashboard/secrets.json"),
        ("GET", "/dashboard/../v1/event-streams"),
        ("POST", "/dashboard/"),
        ("HEAD", "/dashboard/app.js"),
        ("GET", "/v1/event-streams"),
        ("GET", "/openapi.json"),
    ):
        status, _body = await api.call(method, path, token=ANON)
        assert status == 401, (method, path)

"""The dashboard page is served by the API handler at /dashboard, without the key (every data route keeps it)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import ApiServer


def test_the_page_needs_no_key_and_the_data_does() -> None:
    app = build_app(MemoryQueries())
    server = ApiServer(lambda e, c: app.resolve(dict(e), c), "the-key").start()
    try:
        with urllib.request.urlopen(f"{server.url}/dashboard", timeout=5) as resp:
            page = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/html")
        assert "iotpm machine health" in page and 'id="api-key"' in page and "x-api-key" in page
        for path in ("/devices", "/dashboard/../devices", "/dashboardx"):
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(f"{server.url}{path}", timeout=5)
            assert denied.value.code == 403, path
    finally:
        server.stop()

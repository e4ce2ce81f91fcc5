"""The web app over a test runtime (embedded default: in-process tasks, the outbox), and a live server."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from mailer import campaigns
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.targets import import_targets
from mailer.web import create_app

#: 10:00 in Baghdad, within the demo campaign's sending hours.
MORNING = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    runtime.clock = lambda: MORNING
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    return create_app(runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()

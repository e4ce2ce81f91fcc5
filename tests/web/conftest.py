"""The web app over a test runtime (embedded default: in-process tasks, the outbox), and a live server."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from mailer import accounts, campaigns
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


# The dashboard: people signed in with a role, and a clock the test moves.

PASSWORD = "a long and private phrase"


class Clock:
    """The app's clock, moved by the test (TOTP codes and session expiry read it)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(runtime: Runtime, app: Flask) -> Clock:
    moving = Clock(MORNING)
    runtime.clock = moving
    return moving


def add(runtime: Runtime, email: str, role: str) -> accounts.AccountInfo:
    return accounts.add_account(runtime.db, email, role, PASSWORD, MORNING)


def log_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"csrf_token": csrf_of(page.get_data(as_text=True)), "email": email, "password": password},
    )


def enrol(client: FlaskClient, clock: Clock) -> str:
    """Set up the second factor as a person would: read the key off the page, type the current code."""
    page = client.get("/admin/account/two-factor").get_data(as_text=True)
    secret = re.search(r'id="secret">([^<]+)<', page)
    assert secret, page
    key = secret.group(1).replace(" ", "")
    done = client.post(
        "/admin/account/two-factor",
        data={"csrf_token": csrf_of(page), "code": accounts.current_code(key, clock().timestamp())},
    )
    assert done.status_code == 302, done.get_data(as_text=True)
    return key


def give_code(client: FlaskClient, key: str, clock: Clock) -> Any:
    page = client.get("/admin/login/code").get_data(as_text=True)
    return client.post(
        "/admin/login/code",
        data={"csrf_token": csrf_of(page), "code": accounts.current_code(key, clock().timestamp())},
    )


@pytest.fixture
def signed_in(app: Flask, runtime: Runtime, clock: Clock) -> Callable[[str], FlaskClient]:
    """A browser signed in with the given role (admins with their second factor set up)."""

    def sign_in(role: str) -> FlaskClient:
        client = app.test_client()
        add(runtime, f"{role}@example.org", role)
        assert log_in(client, f"{role}@example.org").status_code == 302
        if role == "admin":
            enrol(client, clock)
        return client

    return sign_in


def form_page(client: FlaskClient, path: str = "/admin/") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return csrf_of(response.get_data(as_text=True))

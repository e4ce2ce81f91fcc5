"""Abuse limits: per mailbox whatever its spelling, per IPv6 /64, shared by every process of an installation
(the database without a broker, Redis with one), and keyed by hashes that name nobody."""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import traceback
import uuid
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from limits import parse
from sqlalchemy import func, select

from mailer.config import Settings
from mailer.runtime import Runtime
from mailer.store import repository as repo
from mailer.store.models import Throttle as ThrottleRow
from mailer.web import create_app
from mailer.web.limits import DatabaseThrottle, RedisThrottle, client_bucket
from tests.conftest import SECRET, free_port
from tests.web.conftest import MORNING, csrf_of
from tests.web.proofs import solved_proof
from tests.web.test_pages import PAGE, good_form, outbox

EN = PAGE.format(code="en")


def throttle_keys(runtime: Runtime) -> list[str]:
    with runtime.db.session() as session:
        return list(session.scalars(select(ThrottleRow.key)))


def test_one_mailbox_gets_three_confirmations_whatever_the_spelling(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(EN).get_data(as_text=True))
    spellings = [
        "victim@example.net",
        "victim+1@example.net",
        "Victim@example.net",
        "v.ictim@example.net",
        "VIC.TIM+news@example.net",
        "victim+2@EXAMPLE.net",
    ]
    answers = [
        client.post(EN, data=good_form(token, email=address, altcha=solved_proof())) for address in spellings
    ]
    assert [a.status_code for a in answers] == [200] * len(spellings)
    assert len({a.get_data(as_text=True) for a in answers}) == 1  # the page does not tell
    assert len(outbox(runtime, "confirm")) == 3


def post_from(client: FlaskClient, token: str, address: str, email: str, **changes: str) -> Any:
    return client.post(
        EN, data=good_form(token, email=email, **changes), environ_base={"REMOTE_ADDR": address}
    )


def test_ipv6_clients_are_counted_per_64_and_ipv4_clients_per_address(client: FlaskClient) -> None:
    token = csrf_of(client.get(EN).get_data(as_text=True))
    one_home = [f"2001:db8:5:6::{n:x}" for n in range(1, 7)] + ["2001:db8:5:6:ffff:ffff:ffff:ffff"]
    codes = [post_from(client, token, ip, f"v6-{n}@example.org").status_code for n, ip in enumerate(one_home)]
    assert codes == [200] * 5 + [429] * 2
    assert post_from(client, token, "2001:db8:5:7::1", "next-door@example.org").status_code == 200
    assert post_from(client, token, "198.51.100.1", "v4-1@example.org").status_code == 200
    assert post_from(client, token, "198.51.100.2", "v4-2@example.org").status_code == 200


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "unparsed:not an address"),
        ("", "unparsed:"),
    ],
)
def test_client_buckets(address: str, bucket: str) -> None:
    assert client_bucket(address) == bucket


def test_the_counters_hold_no_address_and_no_ip_in_clear(client: FlaskClient, runtime: Runtime) -> None:
    token = csrf_of(client.get(EN).get_data(as_text=True))
    for ip in ("198.51.100.23", "2001:db8:9:9::1"):
        answer = post_from(client, token, ip, "victim+x@example.net", altcha=solved_proof())
        assert answer.status_code == 200
        answer = post_from(client, token, ip, "victim+y@example.net")
        assert answer.status_code == 200
    keys = throttle_keys(runtime)
    assert len(keys) >= 5  # two buckets for each IP, the mailbox, two spent proofs
    assert all(len(key) <= 100 for key in keys)
    for secret in ("198.51.100.23", "198.51.100", "2001:db8:9:9", "victim", "example.net"):
        assert not [key for key in keys if secret in key.lower()], secret


def test_with_a_broker_the_limits_live_in_redis_and_name_nobody(
    app: Flask, runtime: Runtime, redis_url: str
) -> None:
    secret = f"a-secret-of-this-test-only-{uuid.uuid4().hex}"  # its own keys in the shared Redis
    with_broker = Runtime(dataclasses.replace(runtime.settings, broker_url=redis_url, secret_keys=(secret,)))
    with_broker.__dict__["db"] = runtime.db
    with_broker.__dict__["backend"] = runtime.backend  # confirmations still go out in this process
    with_broker.clock = runtime.clock
    client = create_app(with_broker).test_client()
    token = csrf_of(client.get(EN).get_data(as_text=True))
    ip = "198.51.100.77"
    proof = solved_proof(secret)
    assert post_from(client, token, ip, "victim+1@example.net", altcha=proof).status_code == 200
    assert post_from(client, token, ip, "victim+2@example.net", altcha=proof).status_code == 400  # spent
    answers = [post_from(client, token, ip, f"victim+p{n}@example.net") for n in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 3600
    assert throttle_keys(runtime) == []  # nothing in the database: Redis holds them
    keys = [key.decode() for key in redis.Redis.from_url(redis_url).scan_iter("*")]
    assert [key for key in keys if "ip_without_proof" in key]
    for clear in (ip, "198.51.100", "victim", "example.net"):
        assert not [key for key in keys if clear in key.lower()], clear


def test_redis_counts_spends_once_and_says_how_long_to_wait(redis_url: str) -> None:
    throttle = RedisThrottle(redis_url, f"a-secret-of-this-test-only-{uuid.uuid4().hex}")
    answers = [throttle.hit("ip_without_proof", "203.0.113.5", parse("5/hour")) for _ in range(6)]
    assert answers[:5] == [(True, 0)] * 5
    allowed, retry_after = answers[5]
    assert not allowed
    assert 0 < retry_after <= 3600
    assert throttle.spend_once("altcha", "signature", 60)
    assert not throttle.spend_once("altcha", "signature", 60)


def test_database_windows_are_fixed_and_answers_say_how_long_to_wait(runtime: Runtime) -> None:
    now = [dt.datetime(2026, 11, 27, 7, 59, 30, tzinfo=dt.UTC)]
    throttle = DatabaseThrottle(runtime.db, SECRET, lambda: now[0])
    two_an_hour = parse("2/hour")
    assert [throttle.hit("ip_without_proof", "203.0.113.5", two_an_hour) for _ in range(3)] == [
        (True, 0),
        (True, 0),
        (False, 30),  # the window ends at 08:00
    ]
    assert throttle.hit("ip_without_proof", "203.0.113.6", two_an_hour) == (True, 0)  # another client
    now[0] = dt.datetime(2026, 11, 27, 8, 0, 0, tzinfo=dt.UTC)
    assert throttle.hit("ip_without_proof", "203.0.113.5", two_an_hour) == (True, 0)


def test_a_proof_is_spent_once_until_its_memory_expires(runtime: Runtime) -> None:
    now = [MORNING]
    throttle = DatabaseThrottle(runtime.db, SECRET, lambda: now[0])
    assert throttle.spend_once("altcha", "signature", 600)
    assert not throttle.spend_once("altcha", "signature", 600)
    assert throttle.spend_once("altcha", "another signature", 600)
    now[0] = MORNING + dt.timedelta(seconds=600)
    assert throttle.spend_once("altcha", "signature", 600)  # a row the sweep has not deleted yet
    assert not throttle.spend_once("altcha", "signature", 600)


def test_the_sweep_deletes_expired_counters_only(runtime: Runtime) -> None:
    now = [dt.datetime(2026, 11, 27, 7, 30, tzinfo=dt.UTC)]
    throttle = DatabaseThrottle(runtime.db, SECRET, lambda: now[0])
    throttle.hit("ip_without_proof", "203.0.113.5", parse("5/hour"))  # window ends 08:00
    throttle.hit("confirmations_per_address", "victim@example.net", parse("3/day"))  # ends at midnight
    throttle.spend_once("altcha", "signature", 3600)  # forgotten at 08:30
    with runtime.db.session() as session:
        assert repo.delete_expired_throttles(session, dt.datetime(2026, 11, 27, 7, 59, tzinfo=dt.UTC)) == 0
    with runtime.db.session() as session:
        assert repo.delete_expired_throttles(session, dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)) == 2
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ThrottleRow)) == 1
    now[0] = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)
    assert throttle.spend_once("altcha", "signature", 3600)  # deleted, so this is a first use again


# Several processes over one database: what gunicorn's workers do on the default set-up (no broker).

PROCESSES = 4
PLAIN_POSTS = 3  # each, without a proof: 12 in all against a limit of 5 an hour


def one_process(
    env: dict[str, str], proof: str, name: str, start: Any, results: Any
) -> None:  # pragma: no cover - runs in the child processes
    try:
        runtime = Runtime(Settings.from_env(env))
        runtime.clock = lambda: MORNING
        client = create_app(runtime).test_client()
        token = csrf_of(client.get(EN).get_data(as_text=True))
        start.wait(timeout=120)  # every process posts at the same moment
        answers = [
            ("proof", client.post(EN, data=good_form(token, email=f"{name}@example.org", altcha=proof)))
        ]
        for n in range(PLAIN_POSTS):
            answers.append(("plain", client.post(EN, data=good_form(token, email=f"{name}-{n}@example.org"))))
        results.put(
            [
                (kind, a.status_code, a.headers.get("Retry-After"), "anti-robot" in a.get_data(as_text=True))
                for kind, a in answers
            ]
        )
        runtime.close()
    except BaseException:
        results.put(traceback.format_exc())


def test_limits_and_spent_proofs_hold_across_processes(app: Flask, env: dict[str, str]) -> None:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like gunicorn's workers
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    proof = solved_proof()
    processes = [
        context.Process(target=one_process, args=(env, proof, f"p{n}", start, results))
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    failures = [a for a in answers if isinstance(a, str)]
    assert not failures, failures[0] if failures else ""
    flat = [answer for per_process in answers for answer in per_process]
    proofs = sorted((status, refused) for kind, status, _, refused in flat if kind == "proof")
    assert proofs == [(200, False)] + [(400, True)] * (PROCESSES - 1)  # one challenge, accepted once
    plain = [(status, retry) for kind, status, retry, _ in flat if kind == "plain"]
    assert sorted(status for status, _ in plain) == [200] * 5 + [429] * (PROCESSES * PLAIN_POSTS - 5)
    assert all(retry == "3600" for status, retry in plain if status == 429)  # MORNING is on the hour


def test_with_redis_away_the_limits_still_hold_in_the_database(app: Flask, runtime: Runtime) -> None:
    """A broker that does not answer (full, or down) neither takes the form down nor lifts its limits."""
    away = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with_broker = Runtime(dataclasses.replace(runtime.settings, broker_url=away))
    with_broker.__dict__["db"] = runtime.db
    with_broker.__dict__["backend"] = runtime.backend
    with_broker.clock = runtime.clock
    client = create_app(with_broker).test_client()
    token = csrf_of(client.get(EN).get_data(as_text=True))
    answers = [post_from(client, token, "198.51.100.78", f"writer{n}@example.net") for n in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert throttle_keys(runtime)  # counted in the database meanwhile

"""Rate limits and one-time proofs that hold across every process of an installation.

Two stores behind one small interface (:class:`Throttle`):

- without a broker (the embedded default), counters live in the database's ``throttle`` table: one row per
  (limit, fixed window, client), counted with a single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``,
  so that four gunicorn workers, or a server and a second one on the same database, share them;
- with a broker (``redis://``), the ``limits`` library keeps moving windows on that Redis.

Counters are keyed by a keyed hash (HMAC-SHA256 with the installation's secret key) of what they count,
never by an address or an IP address in clear: a copy of the table or of Redis tells nobody who wrote.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Protocol

from limits import RateLimitItem, storage, strategies
from redis.exceptions import RedisError

from mailer.store import Database
from mailer.store import repository as repo

Clock = Callable[[], dt.datetime]
#: Limit names appear in clear in the keys (they say which limit, not who): short and plain.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


log = logging.getLogger(__name__)


class Throttle(Protocol):
    """Shared counters: per-client rate limits and proofs that may be used once."""

    def hit(self, name: str, key: str, limit: RateLimitItem) -> tuple[bool, int]:
        """Count one attempt of ``key`` against ``limit``: (allowed, seconds to wait when not allowed)."""
        ...

    def spend_once(self, name: str, key: str, ttl: int) -> bool:
        """Mark ``key`` used for ``ttl`` seconds: True only for the first use."""
        ...


class KeyedHash:
    """HMAC-SHA256 under a key derived from the installation's secret (not the signing key itself)."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"mailer throttle keys", hashlib.sha256).digest()

    def __call__(self, *parts: str) -> str:
        mac = hmac.new(self._key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()  # 43 characters


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise ValueError(f"a throttle name is a short lower-case word, not {name!r}")


class DatabaseThrottle:
    """Fixed windows in the ``throttle`` table: the window's number is part of the key, and the row expires
    when the window ends (:func:`mailer.store.repository.delete_expired_throttles` removes it)."""

    def __init__(self, db: Database, secret: str, clock: Clock) -> None:
        self._db = db
        self._hash = KeyedHash(secret)
        self._clock = clock

    def hit(self, name: str, key: str, limit: RateLimitItem) -> tuple[bool, int]:
        _check_name(name)
        now = self._clock()
        period = limit.get_expiry()
        window = int(now.timestamp()) // period
        ends = dt.datetime.fromtimestamp((window + 1) * period, dt.UTC)
        row_key = f"{name}:{window}:{self._hash(name, str(window), key)}"
        with self._db.session() as session:
            hits = repo.throttle_hit(session, row_key, ends, now)
        if hits <= limit.amount:
            return True, 0
        return False, max(1, math.ceil((ends - now).total_seconds()))

    def spend_once(self, name: str, key: str, ttl: int) -> bool:
        _check_name(name)
        now = self._clock()
        row_key = f"{name}:{self._hash(name, key)}"
        with self._db.session() as session:
            hits = repo.throttle_hit(session, row_key, now + dt.timedelta(seconds=ttl), now)
        return hits == 1


class RedisThrottle:
    """Moving windows on the broker's Redis, through the ``limits`` library."""

    def __init__(self, url: str, secret: str) -> None:
        self._storage = storage.storage_from_string(url)
        self._limiter = strategies.MovingWindowRateLimiter(self._storage)
        self._hash = KeyedHash(secret)

    def hit(self, name: str, key: str, limit: RateLimitItem) -> tuple[bool, int]:
        _check_name(name)
        digest = self._hash(name, key)
        if self._limiter.hit(limit, name, digest):
            return True, 0
        stats = self._limiter.get_window_stats(limit, name, digest)
        return False, max(1, math.ceil(stats.reset_time - time.time()))

    def spend_once(self, name: str, key: str, ttl: int) -> bool:
        _check_name(name)
        return bool(self._storage.incr(f"{name}/{self._hash(name, key)}", ttl) == 1)


class RedisOrDatabase:
    """Redis while it answers; the database while it does not (Redis full at ``maxmemory``, or away), so
    that a queue in trouble never takes the pages down nor lifts the limits."""

    def __init__(self, redis: Throttle, database: Throttle) -> None:
        self.redis, self.database = redis, database

    def hit(self, name: str, key: str, limit: RateLimitItem) -> tuple[bool, int]:
        try:
            return self.redis.hit(name, key, limit)
        except (RedisError, OSError) as err:
            log.warning("rate limits: Redis refused (%s); counting in the database", err)
            return self.database.hit(name, key, limit)

    def spend_once(self, name: str, key: str, ttl: int) -> bool:
        try:
            return self.redis.spend_once(name, key, ttl)
        except (RedisError, OSError) as err:
            log.warning("spent proofs: Redis refused (%s); keeping them in the database", err)
            return self.database.spend_once(name, key, ttl)


def make_throttle(db: Database, broker_url: str | None, secret: str, clock: Clock) -> Throttle:
    """Redis when the installation has a broker, else its database: never one process's memory."""
    database = DatabaseThrottle(db, secret, clock)
    if broker_url:
        return RedisOrDatabase(RedisThrottle(broker_url, secret), database)
    return database


def client_bucket(address: str) -> str:
    """What a per-IP limit counts: an IPv4 address, or the /64 of an IPv6 address (one home or phone
    usually holds a whole /64 and can pick any address in it). Anything unparsable is a bucket of its own."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"unparsed:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        # From the integer: a zone index (fe80::1%eth0) must not make a bucket of its own.
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)

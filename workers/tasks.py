"""Thin tasks: they take ids, call one use-case, and report what happened."""

from __future__ import annotations

import os
from typing import Any

from celery import shared_task
from sqlalchemy.exc import InterfaceError, OperationalError

from mailer.config import Settings
from mailer.runtime import Runtime

_runtime: tuple[int, Runtime] | None = None

#: The database away, locked, or refusing a transaction (a serialization failure, a deadlock). Every write
#: of a task is conditional and committed whole, and the provider is called only for rows whose claim is
#: committed: a task that met one of these runs again later, with exponential backoff and full jitter,
#: and finds done what was done. Past its retries, the sweep queues the rows that are still waiting.
DATABASE_TROUBLE = (OperationalError, InterfaceError)
RETRIES = {
    "autoretry_for": DATABASE_TROUBLE,
    "retry_backoff": True,
    # Well within the broker's visibility timeout: a task waiting for its retry is never delivered twice.
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}


def runtime() -> Runtime:
    """One Runtime per worker process (a forked child must not share its parent's connections)."""
    global _runtime
    if _runtime is None or _runtime[0] != os.getpid():
        _runtime = (os.getpid(), Runtime(Settings.from_env()))
    return _runtime[1]


@shared_task(name="mailer.send_batch", **RETRIES)  # type: ignore[untyped-decorator]
def send_batch(message_ids: list[int]) -> dict[str, Any]:
    """Send the ledger messages of one batch that are still queued."""
    result = runtime().send_batch([int(i) for i in message_ids])
    return {"claimed": result.claimed, **result.outcomes}


@shared_task(name="mailer.sweep")  # type: ignore[untyped-decorator]
def sweep() -> dict[str, Any]:
    """The periodic pass (Celery beat): expired claims, scheduled starts, retries and lost tasks."""
    rt = runtime()
    report = rt.sweep()
    return {
        "requeued": report.requeued,
        "unknown": report.unknown,
        "failed": report.failed,
        "batches": report.batches,
    }


@shared_task(name="mailer.apply_events", **RETRIES)  # type: ignore[untyped-decorator]
def apply_events(event_ids: list[int]) -> dict[str, Any]:
    """Apply provider events the webhook stored: delivery state, unknown rows, suppressions."""
    applied = runtime().apply_events([int(i) for i in event_ids])
    return {"events": applied.events, "suppressions": applied.suppressions}

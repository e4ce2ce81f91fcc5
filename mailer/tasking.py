"""How work reaches workers. Backends are plugins, so the core never imports Celery.

With ``MAILER_BROKER_URL`` unset, batches run in this process as soon as they are queued (the embedded
default). With a ``redis://`` URL, the ``celery`` backend (entry point group ``mailer.task_backends``,
provided by the ``workers`` package) puts task messages carrying ids on Redis for ``mailer worker``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Protocol

from mailer.config import Settings
from mailer.errors import N_, ConfigError, MailerError

BULK_QUEUE = "bulk"
LETTERS_QUEUE = "letters"
QUEUES = (LETTERS_QUEUE, BULK_QUEUE)
ENTRY_POINT_GROUP = "mailer.task_backends"


class QueueUnavailable(MailerError):
    """The broker refused a task message (unreachable, or full: Redis at ``maxmemory`` with ``noeviction``).

    Raised only after the rows the task names are committed: nothing is lost, and the dispatcher queues
    them again once ``MAILER_REDISPATCH_SECONDS`` have passed.
    """

    @classmethod
    def refused(cls, error: BaseException) -> QueueUnavailable:
        """The error for what the broker's client raised, its reason on one line."""
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        return cls(
            N_(
                "the task queue refused the work (%(reason)s): nothing was lost; "
                "the waiting messages are queued again when it is back"
            ),
            reason=reason,
        )


class TaskBackend(Protocol):
    name: str

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = BULK_QUEUE) -> None:
        """Ask for a batch of ledger messages to be sent; called only after the rows are committed.
        Raises :class:`QueueUnavailable` when the broker refuses the task."""
        ...

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        """Ask for stored provider events to be applied (the webhook answers before this work).
        Raises :class:`QueueUnavailable` when the broker refuses the task."""
        ...

    def run_worker(self, queues: Sequence[str], concurrency: int, loglevel: str) -> None:
        """Serve tasks until stopped."""
        ...

    def run_beat(self, interval: float, loglevel: str) -> None:
        """Run the periodic sweep until stopped."""
        ...


class InProcessBackend:
    """Runs each batch at once, in this process: no broker, no worker."""

    name = "in-process"

    def __init__(self, handlers: Mapping[str, Callable[[list[int]], object]]) -> None:
        self._handlers = handlers

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = BULK_QUEUE) -> None:
        self._handlers["send_batch"](list(message_ids))

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        self._handlers["apply_events"](list(event_ids))

    def run_beat(self, interval: float, loglevel: str) -> None:
        raise MailerError(N_("MAILER_BROKER_URL is not set: `mailer beat` sweeps in its own process instead"))

    def run_worker(self, queues: Sequence[str], concurrency: int, loglevel: str) -> None:
        raise MailerError(
            N_(
                "MAILER_BROKER_URL is not set: tasks run inside each command, so there is no worker to start "
                "(set it to redis://HOST:6379/0 to use workers)"
            )
        )


def load_backend(settings: Settings, handlers: Mapping[str, Callable[[list[int]], object]]) -> TaskBackend:
    """The backend the settings ask for; ``handlers`` do the work when it runs in this process."""
    if settings.broker_url is None:
        return InProcessBackend(handlers)
    found = entry_points(group=ENTRY_POINT_GROUP, name="celery")
    if not found:
        raise ConfigError(
            N_(
                "MAILER_BROKER_URL is set but the celery task backend is not installed "
                "(install solidarity-mailer with its workers package)"
            )
        )
    backend_class = next(iter(found)).load()
    backend: TaskBackend = backend_class(settings)
    return backend

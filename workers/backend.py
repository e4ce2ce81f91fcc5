"""The ``celery`` task backend that ``mailer`` finds through its entry point."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from mailer.config import Settings
from mailer.tasking import BULK_QUEUE, LETTERS_QUEUE, QueueUnavailable
from workers.app import create_celery

#: What the broker's clients raise when a task message cannot be put on the queue: Redis unreachable
#: (kombu gives up after its publish retries), full (``OOM command not allowed`` under ``noeviction``),
#: read-only, or the socket failing.
REFUSED = (KombuError, RedisError, OSError)


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn the broker's refusal into the engine's error, which every door reports in words."""
    try:
        yield
    except REFUSED as error:
        raise QueueUnavailable.refused(error) from error


class CeleryBackend:
    """Queues task messages on Redis and runs Celery workers."""

    name = "celery"

    def __init__(self, settings: Settings) -> None:
        self.app = create_celery(settings)

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = BULK_QUEUE) -> None:
        with _refusals():
            self.app.send_task("mailer.send_batch", args=[list(message_ids)], queue=queue)

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        with _refusals():
            self.app.send_task("mailer.apply_events", args=[list(event_ids)], queue=LETTERS_QUEUE)

    def run_worker(self, queues: Sequence[str], concurrency: int, loglevel: str) -> None:
        argv = [
            "worker",
            f"--loglevel={loglevel}",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            # Workers share the ledger in the database, not state of Celery's: no start-up hello that waits a
            # second for the other workers' replies before taking a task, no processing of their heartbeats.
            "--without-mingle",
            "--without-gossip",
        ]
        if concurrency == 1:
            # One process that runs its tasks itself: a pool of one child would hold a second copy of
            # everything (126 MB in all after 20,000 alerts, against 164 for a main process and a child).
            argv.append("--pool=solo")
        self.app.worker_main(argv)

    def run_beat(self, interval: float, loglevel: str) -> None:
        self.app.conf.beat_schedule = {
            "sweep": {"task": "mailer.sweep", "schedule": interval, "options": {"queue": "bulk"}}
        }
        beat = self.app.Beat(loglevel=loglevel, schedule="celerybeat-schedule")
        beat.run()

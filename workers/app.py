"""The Celery app, built from the same Settings as everything else."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]
from kombu.utils.scheduling import priority_cycle

from mailer.config import Settings
from mailer.errors import N_, ConfigError
from mailer.tasking import BULK_QUEUE, LETTERS_QUEUE, QUEUES


class LettersFirst(priority_cycle):
    """The order a worker polls its queues in: letters before bulk, always. kombu's Redis transport polls
    the first non-empty queue of the list (BRPOP), and by default rotates the list after each message:
    a letter would then wait behind bulk batches in turn while a mailout drains."""

    def update(self, it: Iterable[str]) -> None:
        order = {name: rank for rank, name in enumerate(QUEUES)}
        self.items[:] = sorted(it, key=lambda name: (order.get(name, len(order)), name))


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _freeze_before_fork(**_: Any) -> None:
    """Pool children share the main process's memory until they write to it; the garbage collector writes
    to every object it tracks, so each child would soon hold a private copy of every module. Objects made
    before the fork are kept out of its sight (the heap is never collected there anyway)."""
    gc.collect()
    gc.freeze()


def create_celery(settings: Settings) -> Celery:
    """A Celery app on the configured Redis broker."""
    if settings.broker_url is None:
        raise ConfigError(N_("MAILER_BROKER_URL is not set: workers need a redis:// broker"))
    app = Celery("solidarity_mailer", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged after it ran, and given back if its worker dies: delivery is at least
        # once, and the ledger's claim makes a second delivery harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A task that can no longer be acknowledged (its broker connection dropped) is stopped rather than
        # left running (Celery 6's default). Redis delivers its message again once the visibility timeout
        # has passed; by then the sweeper has settled the rows it held: back in the queue when the
        # provider was never called, 'unknown' when the call had begun (never sent twice).
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_prefetch_multiplier=1,
        task_queues=(Queue(LETTERS_QUEUE), Queue(BULK_QUEUE)),  # type: ignore[no-untyped-call]
        task_default_queue=BULK_QUEUE,
        # Redis redelivers unacknowledged tasks after this many seconds; a batch must finish well within it.
        broker_transport_options={
            "visibility_timeout": 3600,
            "queue_order_strategy": f"{LettersFirst.__module__}:{LettersFirst.__name__}",
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
        worker_send_task_events=False,
    )
    return app

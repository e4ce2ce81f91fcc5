"""The long-running processes: `mailer worker`, `beat`, `sweep`, `serve`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from mailer.cli.common import (
    JsonOption,
    emit_json,
    fail,
    out,
    reports_errors,
    runtime,
)
from mailer.config import Settings
from mailer.demo_setup import demo_settings
from mailer.i18n import _
from mailer.runtime import Runtime
from mailer.tasking import QUEUES

log = logging.getLogger("mailer")


@reports_errors
def worker(
    concurrency: Annotated[int, typer.Option(help=_("Worker processes."))] = 2,
    queues: Annotated[str, typer.Option(help=_("Comma-separated queues to serve."))] = ",".join(QUEUES),
    loglevel: Annotated[str, typer.Option(help=_("Log level."))] = "info",
) -> None:
    """Start a Celery worker on MAILER_BROKER_URL that sends the queued batches."""
    with runtime() as rt:
        names = [q.strip() for q in queues.split(",") if q.strip()]
        unknown = [q for q in names if q not in QUEUES]
        if unknown:
            fail(
                _("unknown queue(s): %(names)s (known: %(known)s)")
                % {"names": ", ".join(unknown), "known": ", ".join(QUEUES)}
            )
        rt.backend.run_worker(names, concurrency, loglevel)


@reports_errors
def sweep_command(as_json: JsonOption = False) -> None:
    """Once: settle claims of dead workers, start scheduled mailouts, queue retries that are due."""
    with runtime() as rt:
        report = rt.sweep()
    if as_json:
        emit_json(report.__dict__)
        return
    out.print(
        _(
            "Swept: %(requeued)d messages back in the queue, %(unknown)d marked unknown, %(failed)d given "
            "up, %(started)d mailouts started, %(batches)d batches queued, %(finished)d mailouts finished."
        )
        % {
            "requeued": report.requeued,
            "unknown": report.unknown,
            "failed": report.failed,
            "started": len(report.started),
            "batches": report.batches,
            "finished": len(report.finished),
        }
    )


@reports_errors
def beat(
    interval: Annotated[float, typer.Option(help=_("Seconds between two sweeps."))] = 30.0,
    loglevel: Annotated[str, typer.Option(help=_("Log level."))] = "info",
) -> None:
    """Run the scheduler that sweeps periodically (run exactly one, beside the workers)."""
    # A service: it starts even while the database is away, and every pass tries again.
    with runtime(check_schema=False) as rt:
        if rt.settings.broker_url is not None:
            rt.backend.run_beat(interval, loglevel)
            return
        logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        while True:  # the embedded default: sweep in this process
            try:
                rt.sweep()
            except Exception:  # one failed pass (the database away, a bad row) never stops the scheduler
                log.exception("the sweep failed; trying again in %s s", interval)
            time.sleep(interval)


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help=_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=_("Port to listen on."))] = 8000,
    demo_folder: Annotated[
        Path | None, typer.Option("--demo", help=_("Serve the database of `mailer demo` in this folder."))
    ] = None,
) -> None:
    """Serve the action pages and the dashboard at /admin/ (for production, run gunicorn on mailer.web.wsgi:app)."""
    from mailer.web import create_app

    settings = demo_settings(demo_folder) if demo_folder is not None else Settings.from_env()
    rt = Runtime(settings)
    rt.db.check_current()
    out.print(_("Action pages on http://%(host)s:%(port)d/ (Ctrl-C stops)") % {"host": host, "port": port})
    create_app(rt).run(host=host, port=port, debug=False)

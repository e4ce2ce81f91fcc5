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
from mailer.cli.localized import App
from mailer.config import Settings
from mailer.demo_setup import demo_settings
from mailer.errors import N_
from mailer.i18n import _
from mailer.runtime import Runtime
from mailer.tasking import QUEUES

log = logging.getLogger("mailer")
services_app = App()  # its commands join the root: `mailer worker`, not `mailer services worker`


@services_app.command(
    "worker", help=N_("Start a Celery worker on MAILER_BROKER_URL that sends the queued batches.")
)
@reports_errors
def worker(
    concurrency: Annotated[int, typer.Option(help=N_("Worker processes."))] = 2,
    queues: Annotated[str, typer.Option(help=N_("Comma-separated queues to serve."))] = ",".join(QUEUES),
    loglevel: Annotated[str, typer.Option(help=N_("Log level."))] = "info",
) -> None:
    with runtime() as rt:
        names = [q.strip() for q in queues.split(",") if q.strip()]
        unknown = [q for q in names if q not in QUEUES]
        if unknown:
            fail(
                _("unknown queue(s): %(names)s (known: %(known)s)")
                % {"names": ", ".join(unknown), "known": ", ".join(QUEUES)}
            )
        rt.backend.run_worker(names, concurrency, loglevel)


@services_app.command(
    "sweep",
    help=N_("Once: settle claims of dead workers, start scheduled mailouts, queue retries that are due."),
)
@reports_errors
def sweep_command(as_json: JsonOption = False) -> None:
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


@services_app.command(
    "beat", help=N_("Run the scheduler that sweeps periodically (run exactly one, beside the workers).")
)
@reports_errors
def beat(
    interval: Annotated[float, typer.Option(help=N_("Seconds between two sweeps."))] = 30.0,
    loglevel: Annotated[str, typer.Option(help=N_("Log level."))] = "info",
) -> None:
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


@services_app.command(
    "serve",
    help=N_(
        "Serve the action pages and the dashboard at /admin/ "
        "(for production, run gunicorn on mailer.web.wsgi:app)."
    ),
)
@reports_errors
def serve(
    host: Annotated[str, typer.Option(help=N_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=N_("Port to listen on."))] = 8000,
    demo_folder: Annotated[
        Path | None, typer.Option("--demo", help=N_("Serve the database of `mailer demo` in this folder."))
    ] = None,
) -> None:
    from mailer.web import create_app

    settings = demo_settings(demo_folder) if demo_folder is not None else Settings.from_env()
    rt = Runtime(settings)
    rt.db.check_current()
    out.print(_("Action pages on http://%(host)s:%(port)d/ (Ctrl-C stops)") % {"host": host, "port": port})
    create_app(rt).run(host=host, port=port, debug=False)

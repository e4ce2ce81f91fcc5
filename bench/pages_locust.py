"""The crowd for ``bench/pages.py``: Locust users asking one address of the server again and again.

Run by ``bench/pages.py`` (``locust -f bench/pages_locust.py --headless ...``), never imported by it: Locust
patches the standard library with gevent. Each request comes as a new visitor's (no cookie kept), as a
crowd arriving from a shared link does. ``BENCH_PAGES_PATH`` names the address; ``BENCH_PAGES_OUT`` is
the JSON file where each request's end time and latency (seconds) are written when Locust quits, so that
percentiles come unrounded (Locust's own rounds them to whole milliseconds and more).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import FastHttpUser, constant, events, task

PATH = os.environ.get("BENCH_PAGES_PATH", "/")
OUT = os.environ.get("BENCH_PAGES_OUT", "")
_samples: list[tuple[float, float]] = []
_failures: list[str] = []


@events.request.add_listener
def _record(response_time: float, exception: BaseException | None, **_: Any) -> None:
    if exception is not None:
        _failures.append(repr(exception)[:200])
        return
    _samples.append((time.perf_counter(), response_time / 1000))


@events.quitting.add_listener
def _write(**_: Any) -> None:
    if OUT:
        with open(OUT, "w", encoding="utf-8") as handle:
            json.dump({"samples": _samples, "failures": _failures[:20], "failed": len(_failures)}, handle)


class Visitor(FastHttpUser):
    """One visitor after another, without pause: the server, not the visitors, sets the pace."""

    wait_time = constant(0)

    @task
    def visit(self) -> None:
        self.client.cookiejar.clear()  # a new visitor: no session, so the page makes its CSRF token anew
        with self.client.get(PATH, name=PATH, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")

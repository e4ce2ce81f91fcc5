"""A real SMTP server (aiosmtpd) for the benchmarks, in a process of its own: it counts, and keeps nothing.

    python -m bench.smtp_sink --port PORT --stats FILE

``tests/fakes/smtp_server.py`` parses and keeps every message it accepts (what tests need); a benchmark of
thousands of alerts needs only the counts, which this writes to FILE as JSON when it is stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Counting:
    """The aiosmtpd handler: accepts every message and counts recipients, messages and connections."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tally: Counter[str] = Counter()
        self.messages = 0
        self.peers: set[tuple[str, int]] = set()  # one client port per connection

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages += 1
            self.peers.add(tuple(session.peer[:2]))
            self.tally.update(address.lower() for address in envelope.rcpt_tos)
        return "250 Message accepted"

    def stats(self) -> dict[str, int]:
        with self.lock:
            deliveries = sum(self.tally.values())
            return {
                "messages": self.messages,
                "connections": len(self.peers),
                "deliveries": deliveries,
                "recipients": len(self.tally),
                "duplicates": deliveries - len(self.tally),
            }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", type=Path, required=True, help="where to write the counts when stopped")
    arguments = parser.parse_args()
    handler = Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=arguments.port)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    controller.start()
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        controller.stop()
        arguments.stats.write_text(json.dumps(handler.stats()), encoding="utf-8")


if __name__ == "__main__":
    main()

"""A local SendGrid Mail Send endpoint that validates requests like the real one, and misbehaves on request.

Every body is checked against SendGrid's official OpenAPI document and against the rules the document
does not encode. Accepted recipients are recorded (the oracle of the exactly-once tests); faults (429, 500,
503, slow answers, dropped connections) are injected from a script.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA = Path(__file__).parent / "sendgrid" / "tsg_mail_v3.json"
SCHEMA_POINTER = "urn:sendgrid:mail#/components/requestBodies/PostMailSend/content/application~1json/schema"
MAX_RECIPIENTS = 1000
MAX_ARGS_BYTES = 10_000


def mail_send_validator() -> Draft202012Validator:
    document = json.loads(SCHEMA.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        "urn:sendgrid:mail", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": SCHEMA_POINTER}, registry=registry, format_checker=FormatChecker())


def rule_errors(body: dict[str, Any]) -> list[str]:
    """What SendGrid refuses beyond the schema."""
    errors: list[str] = []
    personalizations = body.get("personalizations", [])
    seen: set[str] = set()
    total = 0
    for index, personalization in enumerate(personalizations):
        for kind in ("to", "cc", "bcc"):
            for recipient in personalization.get(kind, []):
                total += 1
                address = str(recipient.get("email", "")).lower()
                if address in seen:
                    errors.append(f"personalizations.{index}.{kind}: {address} appears twice in one request")
                seen.add(address)
        for key in ("substitutions", "custom_args"):
            size = len(json.dumps(personalization.get(key, {}), ensure_ascii=False).encode())
            if size > MAX_ARGS_BYTES:
                errors.append(f"personalizations.{index}.{key}: {size} bytes, more than {MAX_ARGS_BYTES}")
    if total > MAX_RECIPIENTS:
        errors.append(f"{total} recipients in to, cc and bcc together, more than {MAX_RECIPIENTS}")
    types = [c.get("type") for c in body.get("content", [])]
    if "text/plain" in types and types[0] != "text/plain":
        errors.append("content: text/plain must come first")
    return errors


@dataclass
class Fault:
    """One scripted misbehaviour, used by the next request."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # read the body, then close the connection without an answer
    accept: bool = False  # record the recipients as delivered anyway (the ambiguous cases)


@dataclass
class Delivered:
    email: str
    custom_args: dict[str, str]
    substitutions: dict[str, str]
    headers: dict[str, str]
    subject: str
    message_id: str


class FakeSendGrid:
    """Run with ``with FakeSendGrid() as fake:``; point ``MAILER_SENDGRID_API_URL`` at ``fake.url``."""

    def __init__(
        self, api_key: str = "SG.test-key", validate: bool = True, port: int = 0, keep_bodies: bool = True
    ) -> None:
        self.api_key = api_key
        self.keep_bodies = keep_bodies
        self.validate = validate
        self.validator = mail_send_validator()
        self.delivered: list[Delivered] = []
        self.bodies: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, list[str]]] = []
        self.requests = 0
        self.connections = 0
        self.faults: deque[Fault] = deque()
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeSendGrid:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def counts(self) -> Counter[str]:
        """How many times each address was accepted."""
        with self.lock:
            return Counter(d.email for d in self.delivered)

    def stats(self) -> dict[str, int]:
        counts = self.counts()
        with self.lock:
            return {
                "requests": self.requests,
                "connections": self.connections,
                "rejected": len(self.rejected),
                "deliveries": sum(counts.values()),
                "recipients": len(counts),
                "max_per_recipient": max(counts.values(), default=0),
            }

    def handle_send(
        self, raw: bytes, authorization: str | None
    ) -> tuple[int, dict[str, str], bytes, Fault | None]:
        """Status, headers, body and the fault applied (if any) for one request."""
        with self.lock:
            self.requests += 1
            fault = self.faults.popleft() if self.faults else None
        if authorization != f"Bearer {self.api_key}":
            return (
                401,
                {},
                _errors(["The provided authorization grant is invalid, expired, or revoked"]),
                None,
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, _errors(["Bad Request: the body is not JSON"]), None
        problems = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in self.validator.iter_errors(body)
        ]
        problems += rule_errors(body) if isinstance(body, dict) else []
        if problems and self.validate:
            with self.lock:
                self.rejected.append((400, problems))
            return 400, {}, _errors(problems), None
        message_id = uuid.uuid4().hex[:22]
        if fault is None or fault.accept:
            self._record(body, message_id)
        if fault is not None:
            return fault.status, fault.headers, _errors([f"injected {fault.status}"]), fault
        return 202, {"X-Message-Id": message_id}, b"", None

    def _record(self, body: dict[str, Any], message_id: str) -> None:
        with self.lock:
            if self.keep_bodies:
                self.bodies.append(body)
            for personalization in body["personalizations"]:
                for recipient in personalization.get("to", []):
                    self.delivered.append(
                        Delivered(
                            email=recipient["email"],
                            custom_args=personalization.get("custom_args", {}),
                            substitutions=personalization.get("substitutions", {}),
                            headers=personalization.get("headers", {}),
                            subject=body.get("subject", ""),
                            message_id=message_id,
                        )
                    )


def _errors(messages: list[str]) -> bytes:
    return json.dumps({"errors": [{"message": m, "field": None, "help": None} for m in messages]}).encode()


def _handler(fake: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API

        def setup(self) -> None:
            super().setup()
            with fake.lock:
                fake.connections += 1

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the records, not a log."""

        def do_GET(self) -> None:
            if self.path == "/stats":
                self._answer(200, {}, json.dumps(fake.stats()).encode())
            else:
                self._answer(404, {}, _errors([f"no route {self.path}"]))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v3/mail/send":
                self._answer(404, {}, _errors([f"no route {self.path}"]))
                return
            status, headers, body, fault = fake.handle_send(raw, self.headers.get("Authorization"))
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            self._answer(status, headers, body)

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(port: int, api_key: str) -> None:
    """Run the fake in a process of its own (benchmarks): ``GET /stats`` reports what it received."""
    fake = FakeSendGrid(api_key=api_key, port=port, keep_bodies=False)
    print(f"fake SendGrid on {fake.url}", flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="SG.test-key")
    arguments = parser.parse_args()
    serve(arguments.port, arguments.api_key)

"""A local SendGrid Mail Send endpoint that validates requests like the real one, and misbehaves on request.

Every body is checked against SendGrid's official OpenAPI document and against the rules the document
does not encode. Accepted recipients are recorded (the oracle of the exactly-once tests); faults (429, 500,
503, slow answers, dropped connections) are injected from a script.

The *light* mode (``light=True``, ``--light``) is for throughput benchmarks: it still checks the API key and
parses the JSON, but skips the schema and the rules and keeps only counts (requests, connections, and how
many times each address was accepted), so that the provider costs next to nothing locally.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
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
MAX_SCHEDULE_SECONDS = 72 * 3600
_RESERVED_INTRO = "You may not override the following headers:"
_BYPASS_FILTERS = ("bypass_spam_management", "bypass_bounce_management", "bypass_unsubscribe_management")
# RFC 5322 field names: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# What would turn one address into several, or into more than an address, once written into a header.
_NOT_IN_ADDRESS = re.compile(r"[\s<>,;\x00-\x1f\x7f]")


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return document


def _request_schema(document: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["requestBodies"]["PostMailSend"]["content"][
        "application/json"
    ]["schema"]
    return schema


def mail_send_validator() -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:sendgrid:mail", Resource.from_contents(_document(), default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": SCHEMA_POINTER}, registry=registry, format_checker=FormatChecker())


def reserved_headers() -> frozenset[str]:
    """The headers the document says may not be set, read from its own prose (``headers`` at the message
    level and in ``personalizations``), lower-cased: header names are case-insensitive."""
    schema = _request_schema(_document())
    descriptions = [
        schema["properties"]["headers"]["description"],
        schema["properties"]["personalizations"]["items"]["properties"]["headers"]["description"],
    ]
    names: set[str] = set()
    for description in descriptions:
        _, found, listed = description.partition(_RESERVED_INTRO)
        if not found:
            raise ValueError("the document no longer lists the reserved headers where it used to")
        names.update(name.lower() for name in re.findall(r"`([^`]+)`", listed))
    return frozenset(names)


RESERVED_HEADERS = reserved_headers()


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a request, shaped like an entry of SendGrid's ``errors`` array."""

    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of an array (the schema reports anything else)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def _line_break(value: Any) -> bool:
    return isinstance(value, str) and ("\r" in value or "\n" in value)


def _too_late(send_at: Any, now: float) -> bool:
    return isinstance(send_at, int) and send_at > now + MAX_SCHEDULE_SECONDS


def _substituted(text: str, substitutions: dict[str, Any]) -> str:
    for key, value in substitutions.items():
        if isinstance(value, str):
            text = text.replace(key, value)
    return text


def rule_problems(body: dict[str, Any], now: float | None = None) -> list[Problem]:
    """What SendGrid refuses beyond the schema: the document's prose, and the limits of its Mail Send
    errors reference (a total of 1000 recipients, each address once, text/plain first, a subject)."""
    now = time.time() if now is None else now
    problems: list[Problem] = []
    template = body.get("template_id")
    dynamic = isinstance(template, str) and template.startswith("d-")
    personalizations = _objects(body.get("personalizations"))
    if isinstance(body.get("personalizations"), list) and not body["personalizations"]:
        problems.append(Problem("personalizations", "at least one personalization is required"))
    problems += _header_problems("headers", body.get("headers"))
    top_args = _mapping(body.get("custom_args"))
    if _size(top_args) > MAX_ARGS_BYTES:
        problems.append(Problem("custom_args", f"{_size(top_args)} bytes, more than {MAX_ARGS_BYTES}"))
    problems += _string_values("custom_args", top_args)
    seen: dict[str, str] = {}
    total = 0
    for index, personalization in enumerate(personalizations):
        where = f"personalizations.{index}"
        if isinstance(personalization.get("to"), list) and not personalization["to"]:
            problems.append(Problem(f"{where}.to", "must hold at least one recipient"))
        for kind in ("to", "cc", "bcc"):
            for position, recipient in enumerate(_objects(personalization.get(kind))):
                total += 1
                address = str(recipient.get("email", "")).lower()
                if address in seen:
                    problems.append(
                        Problem(
                            f"{where}.{kind}.{position}",
                            f"{address} appears twice in one request (first at {seen[address]})",
                        )
                    )
                else:
                    seen[address] = f"{where}.{kind}.{position}"
        problems += _header_problems(f"{where}.headers", personalization.get("headers"))
        substitutions = _mapping(personalization.get("substitutions"))
        if _size(substitutions) > MAX_ARGS_BYTES:
            problems.append(
                Problem(f"{where}.substitutions", f"{_size(substitutions)} bytes, more than {MAX_ARGS_BYTES}")
            )
        if substitutions and dynamic:
            problems.append(Problem(f"{where}.substitutions", "may not be used with a dynamic template"))
        args = _mapping(personalization.get("custom_args"))
        merged = {**top_args, **args}  # the message's custom_args apply to every personalization
        if _size(merged) > MAX_ARGS_BYTES:
            problems.append(
                Problem(f"{where}.custom_args", f"{_size(merged)} bytes in all, more than {MAX_ARGS_BYTES}")
            )
        problems += _string_values(f"{where}.custom_args", args)
        # SendGrid fills the substitutions into the subject and the reply-to: the result is a header.
        subject = personalization.get("subject", body.get("subject"))
        if not template and not (isinstance(subject, str) and subject):
            problems.append(Problem(f"{where}.subject", "a subject is required here or for the message"))
        if isinstance(subject, str) and _line_break(_substituted(subject, substitutions)):
            problems.append(Problem(f"{where}.subject", "the subject holds a line break after substitution"))
        for part in ("name", "email"):
            value = _mapping(body.get("reply_to")).get(part)
            if isinstance(value, str) and _line_break(_substituted(value, substitutions)):
                problems.append(
                    Problem(f"reply_to.{part}", f"holds a line break after {where}'s substitutions")
                )
        if _too_late(personalization.get("send_at"), now):
            problems.append(
                Problem(f"{where}.send_at", "a send cannot be scheduled more than 72 hours ahead")
            )
    if total > MAX_RECIPIENTS:
        problems.append(
            Problem(
                "personalizations",
                f"{total} recipients in to, cc and bcc together, more than {MAX_RECIPIENTS}",
            )
        )
    if _too_late(body.get("send_at"), now):
        problems.append(Problem("send_at", "a send cannot be scheduled more than 72 hours ahead"))
    if "reply_to" in body and "reply_to_list" in body:
        problems.append(Problem("reply_to_list", "use either reply_to or reply_to_list, not both"))
    problems += _content_problems(body, bool(template))
    problems += _attachment_problems(body.get("attachments"))
    settings = _mapping(body.get("mail_settings"))
    if _mapping(settings.get("bypass_list_management")).get("enable") is True:
        for other in _BYPASS_FILTERS:
            if _mapping(settings.get(other)).get("enable") is True:
                problems.append(
                    Problem(f"mail_settings.{other}", "cannot be combined with bypass_list_management")
                )
    problems += _address_problems(body)
    return problems


def rule_errors(body: dict[str, Any], now: float | None = None) -> list[str]:
    """:func:`rule_problems` as ``"field: message"`` lines."""
    return [str(problem) for problem in rule_problems(body, now)]


def _header_problems(where: str, headers: Any) -> list[Problem]:
    problems: list[Problem] = []
    for name, value in _mapping(headers).items():
        if name.lower() in RESERVED_HEADERS:
            problems.append(Problem(f"{where}.{name}", f"the {name} header may not be set here"))
        if not _FIELD_NAME.fullmatch(name):
            problems.append(Problem(f"{where}.{name}", "a header name is printable ASCII without a colon"))
        if not isinstance(value, str):
            problems.append(Problem(f"{where}.{name}", "a header value must be a string"))
        elif _line_break(value):
            problems.append(Problem(f"{where}.{name}", "a header value may not hold CR or LF"))
    return problems


def _string_values(where: str, values: dict[str, Any]) -> list[Problem]:
    return [
        Problem(f"{where}.{key}", "must be a string")
        for key, value in values.items()
        if not isinstance(value, str)
    ]


def _content_problems(body: dict[str, Any], template: bool) -> list[Problem]:
    contents = body.get("content")
    if not template and (not isinstance(contents, list) or not contents):
        return [Problem("content", "at least one content type is required")]
    problems: list[Problem] = []
    types = [c.get("type") for c in _objects(contents)]
    expected = [t for t in ("text/plain", "text/html") if t in types]
    if types[: len(expected)] != expected:
        problems.append(Problem("content", "text/plain, then text/html, must come first"))
    problems += [
        Problem(f"content.{i}.type", "may not hold CR or LF") for i, t in enumerate(types) if _line_break(t)
    ]
    return problems


def _attachment_problems(attachments: Any) -> list[Problem]:
    problems: list[Problem] = []
    for index, attachment in enumerate(_objects(attachments)):
        try:
            base64.b64decode(str(attachment.get("content", "")), validate=True)
        except (ValueError, binascii.Error):
            problems.append(Problem(f"attachments.{index}.content", "must be Base64 encoded"))
        for key in ("type", "filename", "content_id"):
            if _line_break(attachment.get(key)):
                problems.append(Problem(f"attachments.{index}.{key}", "may not hold CR or LF"))
    return problems


def _address_problems(body: dict[str, Any]) -> list[Problem]:
    """Names and addresses become headers: no line break in either, and one address per address field."""
    places: list[tuple[str, Any]] = [("from", body.get("from")), ("reply_to", body.get("reply_to"))]
    places += [(f"reply_to_list.{i}", r) for i, r in enumerate(_objects(body.get("reply_to_list")))]
    for index, personalization in enumerate(_objects(body.get("personalizations"))):
        places.append((f"personalizations.{index}.from", personalization.get("from")))
        for kind in ("to", "cc", "bcc"):
            places += [
                (f"personalizations.{index}.{kind}.{i}", r)
                for i, r in enumerate(_objects(personalization.get(kind)))
            ]
    problems: list[Problem] = []
    for where, person in places:
        person = _mapping(person)
        if _line_break(person.get("name")):
            problems.append(Problem(f"{where}.name", "may not hold CR or LF"))
        email = person.get("email")
        if isinstance(email, str):
            local, at, domain = email.rpartition("@")
            if not (local and at and domain) or _NOT_IN_ADDRESS.search(email):
                problems.append(Problem(f"{where}.email", "does not contain a valid address"))
    return problems


def request_problems(body: Any, validator: Draft202012Validator, now: float | None = None) -> list[Problem]:
    """Everything wrong with a Mail Send body: the schema first, then the rules."""
    problems = [
        Problem(".".join(map(str, e.absolute_path)) or None, e.message) for e in validator.iter_errors(body)
    ]
    if isinstance(body, dict):
        problems += rule_problems(body, now)
    return problems


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
        self,
        api_key: str = "SG.test-key",
        validate: bool = True,
        port: int = 0,
        keep_bodies: bool = True,
        light: bool = False,
    ) -> None:
        self.api_key = api_key
        self.keep_bodies = keep_bodies
        self.validate = validate
        self.light = light
        # Light mode: counts only, kept up to date as requests come, so that /stats costs nothing.
        self.tally: Counter[str] = Counter()
        self.tally_deliveries = 0
        self.tally_duplicates = 0
        self.tally_max = 0
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
        # A short poll: shutdown() waits for it, and tests start and stop many fakes.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

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
            if self.light:
                return Counter(self.tally)
            return Counter(d.email for d in self.delivered)

    def stats(self) -> dict[str, int]:
        if self.light:
            with self.lock:
                return {
                    "requests": self.requests,
                    "connections": self.connections,
                    "rejected": len(self.rejected),
                    "deliveries": self.tally_deliveries,
                    "recipients": len(self.tally),
                    "max_per_recipient": self.tally_max,
                    "duplicates": self.tally_duplicates,
                }
        counts = self.counts()
        with self.lock:
            deliveries = sum(counts.values())
            return {
                "requests": self.requests,
                "connections": self.connections,
                "rejected": len(self.rejected),
                "deliveries": deliveries,
                "recipients": len(counts),
                "max_per_recipient": max(counts.values(), default=0),
                "duplicates": deliveries - len(counts),
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
        problems = [] if self.light else request_problems(body, self.validator)
        if problems and self.validate:
            with self.lock:
                self.rejected.append((400, [str(p) for p in problems]))
            return 400, {}, _errors(problems), None
        message_id = uuid.uuid4().hex[:22]
        if fault is None or fault.accept:
            self._record(body, message_id)
        if fault is not None:
            return fault.status, fault.headers, _errors([f"injected {fault.status}"]), fault
        return 202, {"X-Message-Id": message_id}, b"", None

    def _record(self, body: dict[str, Any], message_id: str) -> None:
        if self.light:
            self._tally(body)
            return
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

    def _tally(self, body: Any) -> None:
        """Light mode: count each address accepted, nothing else (the body need not be valid)."""
        addresses = [
            str(recipient.get("email", "")).lower()
            for personalization in _objects(body.get("personalizations") if isinstance(body, dict) else None)
            for recipient in _objects(personalization.get("to"))
        ]
        with self.lock:
            for address in addresses:
                seen = self.tally[address] + 1
                self.tally[address] = seen
                if seen > 1:
                    self.tally_duplicates += 1
                self.tally_max = max(self.tally_max, seen)
            self.tally_deliveries += len(addresses)


def _errors(problems: list[Problem] | list[str]) -> bytes:
    """SendGrid's error shape: ``{"errors": [{"message": ..., "field": ..., "help": ...}]}``."""
    entries = [p if isinstance(p, Problem) else Problem(None, p) for p in problems]
    return json.dumps(
        {"errors": [{"message": p.message, "field": p.field, "help": None} for p in entries]}
    ).encode()


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


def serve(port: int, api_key: str, light: bool = False) -> None:
    """Run the fake in a process of its own (benchmarks): ``GET /stats`` reports what it received."""
    fake = FakeSendGrid(api_key=api_key, port=port, keep_bodies=False, light=light)
    print(f"fake SendGrid on {fake.url}", flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="SG.test-key")
    parser.add_argument(
        "--light",
        action="store_true",
        help="check the key and parse the JSON only; keep counts, not bodies (throughput benchmarks)",
    )
    arguments = parser.parse_args()
    serve(arguments.port, arguments.api_key, arguments.light)

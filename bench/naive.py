"""The baseline a tutorial would write: one Celery task and one SendGridAPIClient.send() per recipient.

Not part of the engine: the benchmark runs it beside the engine, on the same data, to have something to
compare with.
"""

from __future__ import annotations

import datetime as dt
import os

from celery import Celery
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, From, Mail, To

from mailer.config import Settings
from mailer.rendering import AlertContent, Renderer
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Supporter

app = Celery("naive", broker=os.environ.get("MAILER_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json", accept_content=["json"], task_ignore_result=True, worker_prefetch_multiplier=1
)
_state: dict[str, object] = {}


@app.task(name="naive.send_one")  # type: ignore[untyped-decorator]
def send_one(supporter_id: int, slug: str) -> None:
    settings = Settings.from_env()
    if "db" not in _state:
        _state["db"] = Database(settings.database_url, settings.require_vault())
    db = _state["db"]
    assert isinstance(db, Database)
    with db.session() as session:
        supporter = session.get(Supporter, supporter_id)
        campaign = repo.get_campaign(session, slug)
        content = repo.get_content(session, campaign.id, "alert", supporter.locale)
        alert = AlertContent(
            campaign.title[supporter.locale], content.subject, content.preheader, content.body
        )
    email = (
        Renderer()
        .render_alert(alert, supporter.locale, dt.date.today())
        .personalise(
            {
                "first_name": supporter.name.split()[0],
                "name": supporter.name,
                "governorate": "",
                "action_url": settings.base_url,
                "unsubscribe_url": settings.base_url,
            }
        )
    )
    message = Mail(
        from_email=From(settings.from_email),
        to_emails=To(supporter.email, supporter.name),
        subject=email.subject,
        plain_text_content=Content("text/plain", email.text),
        html_content=Content("text/html", email.html),
    )
    client = SendGridAPIClient(api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_url)
    client.send(message)

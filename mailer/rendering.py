"""Rendering emails: one cached Jinja2 environment per locale, with that locale's catalog installed.

An alert is rendered once per (campaign, locale) into a :class:`PreparedEmail` whose placeholders are still
markers (CSS is inlined once, then); :meth:`PreparedEmail.personalise` fills in each recipient.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from markupsafe import Markup

from mailer.content import RLM, insert_markers, markdown_to_html, markdown_to_text, marker, substitute
from mailer.errors import N_, RenderError
from mailer.i18n import format_date, interface_language, translations
from mailer.locales import Locale, get_locale
from mailer.resources import resource_dir

FONT_STACK = "-apple-system, Segoe UI, Tahoma, Arial, Noto Sans, Noto Naskh Arabic, sans-serif"


@dataclass(frozen=True)
class RenderedEmail:
    """One recipient's message, ready for a transport."""

    locale: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class PreparedEmail:
    """A message rendered for one locale, with placeholder markers still in it."""

    locale: Locale
    subject: str
    html: str
    text: str

    def personalise(self, values: Mapping[str, str]) -> RenderedEmail:
        """Fill in one recipient's values, escaped for each part."""
        rtl = self.locale.is_rtl
        subject = " ".join(substitute(self.subject, values, for_html=False).split())
        return RenderedEmail(
            locale=self.locale.code,
            subject=subject,
            html=substitute(self.html, values, for_html=True, rtl=rtl),
            text=substitute(self.text, values, for_html=False),
        )


@dataclass(frozen=True)
class AlertContent:
    """What the coordinator wrote for one locale."""

    campaign_title: str
    subject: str
    preheader: str
    body: str


_ALERTS_KEPT = 16  # the locales of a few mailouts at once


class Renderer:
    """Renders the project's email templates in any registry locale."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir or resource_dir("templates")
        self._environments: dict[str, Environment] = {}
        #: Alerts rendered lately: a worker renders each batch of a mailout from the same snapshot.
        self._alerts: dict[tuple[AlertContent, str, dt.date, str], PreparedEmail] = {}

    def environment(self, code: str) -> Environment:
        locale = get_locale(code)
        env = self._environments.get(locale.code)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(self.templates_dir),
                autoescape=select_autoescape(["html"]),
                undefined=StrictUndefined,
                extensions=["jinja2.ext.i18n"],
                keep_trailing_newline=False,
            )
            env.install_gettext_translations(translations(locale.code), newstyle=True)  # type: ignore[attr-defined]
            # Numbers inside translated sentences, in the locale's digits: {{ ngettext(...)|digits }}.
            env.filters["digits"] = partial(_localize_digits, locale)
            # A run of unknown direction (a person's name) inside a sentence: {{ _("Dear %(name)s,", name=name|bdi) }}.
            env.filters["bdi"] = _isolate
            self._environments[locale.code] = env
        return env

    def render_page(self, name: str, context: Mapping[str, object], code: str | None = None) -> str:
        """A page of our own (not an email) in the interface language, or in ``code``."""
        locale = get_locale(code or interface_language())
        env = self.environment(locale.code)
        try:
            return env.get_template(name).render({**context, "page_locale": locale})
        except TemplateError as err:
            raise RenderError(N_("template %(name)s: %(reason)s"), name=name, reason=str(err)) from err

    def gettext(self, code: str, message: str) -> str:
        """One catalog string in a locale (for texts built outside a template)."""
        return translations(get_locale(code).code).gettext(message)

    def render_email(self, name: str, context: Mapping[str, object], code: str) -> PreparedEmail:
        """One of our own emails (``templates/email/<name>/``) in a locale, CSS inlined."""
        locale = get_locale(code)
        full = {**self._layout_context(locale), **context}
        env = self.environment(locale.code)
        try:
            subject = " ".join(env.get_template(f"email/{name}/subject.txt").render(full).split())
            # The layout's <title>, under a name of its own: a caller's "subject" (the letter's) stays its own.
            full = {**full, "email_subject": subject}
            html = env.get_template(f"email/{name}/body.html").render(full)
            text = env.get_template(f"email/{name}/body.txt").render(full)
        except TemplateError as err:
            raise RenderError(
                N_("%(name)s template in %(code)s: %(reason)s"), name=name, code=code, reason=str(err)
            ) from err
        return PreparedEmail(locale=locale, subject=subject, html=_inliner().inline(html), text=text + "\n")

    @staticmethod
    def _layout_context(locale: Locale) -> dict[str, object]:
        return {
            "locale": locale,
            "align": "right" if locale.is_rtl else "left",
            "opposite": "left" if locale.is_rtl else "right",
            "font_stack": FONT_STACK,
            "rtl_mark": RLM if locale.is_rtl else "",
            "preheader": "",
        }

    def render_alert(
        self, content: AlertContent, code: str, sent_on: dt.date, privacy_url: str = "#"
    ) -> PreparedEmail:
        """The alert in one locale, CSS inlined, placeholders left as markers. ``privacy_url`` is the privacy
        notice in this locale (previews leave it pointing nowhere, like their unsubscribe link). The same
        arguments give the same email: the last few are kept, not rendered and inlined again."""
        key = (content, code, sent_on, privacy_url)
        found = self._alerts.get(key)
        if found is None:
            if len(self._alerts) >= _ALERTS_KEPT:
                self._alerts.clear()
            found = self._alerts[key] = self._render_alert(content, code, sent_on, privacy_url)
        return found

    def _render_alert(
        self, content: AlertContent, code: str, sent_on: dt.date, privacy_url: str
    ) -> PreparedEmail:
        locale = get_locale(code)
        subject = insert_markers(content.subject)
        context = {
            "locale": locale,
            "align": "right" if locale.is_rtl else "left",
            "opposite": "left" if locale.is_rtl else "right",
            "font_stack": FONT_STACK,
            "rtl_mark": RLM if locale.is_rtl else "",
            "campaign_title": content.campaign_title,
            "subject": subject,
            "email_subject": subject,
            "preheader": insert_markers(content.preheader),
            "content_html": markdown_to_html(content.body, rtl=locale.is_rtl),
            "content_text": markdown_to_text(content.body, rtl=locale.is_rtl).rstrip("\n"),
            "unsubscribe_url": marker("unsubscribe_url"),
            "privacy_url": privacy_url,
            "sent_on": format_date(sent_on, locale.code),
        }
        env = self.environment(locale.code)
        try:
            subject = env.get_template("email/alert/subject.txt").render(context).strip()
            html = env.get_template("email/alert/body.html").render(context)
            text = env.get_template("email/alert/body.txt").render(context)
        except TemplateError as err:
            raise RenderError(
                N_("alert template in %(code)s: %(reason)s"), code=locale.code, reason=str(err)
            ) from err
        return PreparedEmail(locale=locale, subject=subject, html=_inliner().inline(html), text=text + "\n")


def _isolate(value: object) -> Markup:
    """``<bdi>``: a name written in any script keeps its own direction and leaves the sentence's punctuation
    where the sentence put it ("مرحبًا Sarah،" keeps its comma after the name). Its direction is unknown, so
    not ``<span dir="ltr">`` (content.py's choice for Latin runs); a client that drops the element keeps the
    name, merely not isolated."""
    return Markup("<bdi>%s</bdi>") % (value,)  # the value escaped


def _localize_digits(locale: Locale, value: object) -> object:
    if isinstance(value, Markup):
        return Markup(locale.localize_digits(str(value)))  # noqa: S704 - already escaped; only digits change
    return locale.localize_digits(str(value))


@cache
def _inliner() -> css_inline.CSSInliner:
    # Remote stylesheets are never fetched: rendering must not touch the network.
    return css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)

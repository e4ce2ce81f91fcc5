"""The WSGI entry point for production: ``gunicorn --workers 4 mailer.web.wsgi:app``."""

from mailer.config import Settings
from mailer.runtime import Runtime
from mailer.web import create_app

app = create_app(Runtime(Settings.from_env()))

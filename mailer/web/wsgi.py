"""The WSGI entry point for production: ``gunicorn --workers 4 mailer.web.wsgi:app``."""

from mailer.config import Settings
from mailer.runtime import Runtime
from mailer.web import create_app

_runtime = Runtime(Settings.from_env())
_runtime.db.check_current()  # the schema, and a key of this installation: never write under another one
app = create_app(_runtime)

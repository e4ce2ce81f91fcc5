"""Celery on Redis: the app, thin tasks that take ids, and the task backend plugin for ``mailer``."""

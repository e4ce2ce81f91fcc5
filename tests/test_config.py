from pathlib import Path

import pytest

from mailer.config import Settings
from mailer.errors import ConfigError


def test_defaults_are_the_embedded_setup(tmp_path: Path) -> None:
    settings = Settings.from_env({}, cwd=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'mailer.db'}"
    assert settings.broker_url is None
    assert settings.transport == "outbox"
    assert settings.outbox_dir == tmp_path / "outbox"
    assert settings.sendgrid_webhook_max_age == 600


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILER_DATABASE_URL", "mysql://db/x"),
        ("MAILER_BROKER_URL", "amqp://guest@localhost//"),
        ("MAILER_TRANSPORT", "pigeon"),
        ("MAILER_SMTP_URL", "http://relay.example.org"),
        ("MAILER_SENDGRID_API_URL", "ftp://x"),
        ("MAILER_SECRET_KEY", "short"),
        ("MAILER_BASE_URL", "act.example.org"),
        ("MAILER_FROM_EMAIL", "not an address"),
        ("MAILER_SENDGRID_WEBHOOK_MAX_AGE", "ten"),
        ("MAILER_SENDGRID_WEBHOOK_MAX_AGE", "-1"),
        ("MAILER_BATCH_SIZE", "5000"),
        ("MAILER_LANGUAGE", "ku"),
    ],
)
def test_a_wrong_value_names_its_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value}, cwd=tmp_path)


def test_transport_needs_its_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILER_SMTP_URL"):
        Settings.from_env({"MAILER_TRANSPORT": "smtp"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        Settings.from_env({"MAILER_TRANSPORT": "sendgrid"}, cwd=tmp_path)
    settings = Settings.from_env({"MAILER_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.x"}, cwd=tmp_path)
    assert settings.sendgrid_api_key == "SG.x"


def test_secret_keys_rotate_newest_first(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"MAILER_SECRET_KEY": "new-key-0123456789, old-key-0123456789"}, cwd=tmp_path
    )
    assert settings.secret_keys == ("new-key-0123456789", "old-key-0123456789")


def test_missing_secret_is_reported_when_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILER_SECRET_KEY"):
        Settings.from_env({}, cwd=tmp_path).require_secret_keys()

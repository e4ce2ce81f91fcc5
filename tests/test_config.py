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
        ("MAILER_SECRET_KEY", "sixteen-chars-ok"),  # 16 characters can be guessed offline: 32 at least
        ("MAILER_FROM_NAME", "Campaign\u2028Bcc: x@example.net"),
        ("MAILER_FROM_NAME", "=?UTF-8?Q?x=0A?="),
        ("MAILER_BASE_URL", "act.example.org"),
        ("MAILER_FROM_EMAIL", "not an address"),
        ("MAILER_PRIVACY_CONTACT", "privacy at example.org"),
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
    with pytest.raises(ConfigError, match="MAILER_BASE_URL"):  # links would point at localhost
        Settings.from_env({"MAILER_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.x"}, cwd=tmp_path)
    settings = Settings.from_env(
        {
            "MAILER_TRANSPORT": "sendgrid",
            "SENDGRID_API_KEY": "SG.x",
            "MAILER_BASE_URL": "https://act.example.org",
        },
        cwd=tmp_path,
    )
    assert settings.sendgrid_api_key == "SG.x"


def test_passwords_stay_out_of_the_settings_repr(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "MAILER_DATABASE_URL": "postgresql://mailer:db-pass-1@db.example.org/mailer",
            "MAILER_BROKER_URL": "redis://:broker-pass-2@redis.example.org:6379/0",
            "MAILER_TRANSPORT": "smtp",
            "MAILER_SMTP_URL": "smtp://u:smtp-pass-3@smtp.example.org:587",
            "MAILER_BASE_URL": "https://act.example.org",
            "MAILER_SECRET_KEY": "k" * 40,
        },
        cwd=tmp_path,
    )
    shown = repr(settings)
    for secret in ("db-pass-1", "broker-pass-2", "smtp-pass-3", "k" * 40):
        assert secret not in shown


def test_secret_keys_rotate_newest_first(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"MAILER_SECRET_KEY": "new-key-0123456789abcdef0123456789, old-key-0123456789abcdef0123456789"},
        cwd=tmp_path,
    )
    assert settings.secret_keys == (
        "new-key-0123456789abcdef0123456789",
        "old-key-0123456789abcdef0123456789",
    )


def test_missing_secret_is_reported_when_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILER_SECRET_KEY"):
        Settings.from_env({}, cwd=tmp_path).require_secret_keys()

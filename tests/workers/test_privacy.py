"""R2: what the queue holds names nobody: ids only, never an address, a name or a letter's words."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_client

from mailer import campaigns, letters, mailouts
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.supporters import import_supporters
from mailer.targets import import_targets
from tests.factories import NAMES, supporters_csv

pytestmark = pytest.mark.integration


def everything_in(url: str) -> bytes:
    """Every key and value of every type in the Redis database, as one blob to search."""
    client = redis_client.Redis.from_url(url)
    blob = b""
    for key in client.scan_iter():
        kind = client.type(key)
        blob += key
        if kind == b"list":
            blob += b"".join(client.lrange(key, 0, -1))
        elif kind == b"string":
            blob += client.get(key) or b""
        elif kind == b"hash":
            blob += b"".join(k + v for k, v in client.hgetall(key).items())
        elif kind in (b"set", b"zset"):
            blob += b"".join(client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key))
    client.close()
    return blob


def test_queued_tasks_carry_ids_only(redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    env = env | {"MAILER_BROKER_URL": redis_url}
    settings = Settings.from_env(env, cwd=tmp_path)
    upgrade_database(settings.database_url, settings.require_vault())
    runtime = Runtime(settings)
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    supporters_csv(tmp_path / "people.csv", 40)
    import_supporters(runtime.db, tmp_path / "people.csv")
    mailouts.launch_mailout(runtime.db, runtime.backend, "protect-hrds-iraq", {}, {}, batch_size=10)
    raw = {
        "name": "Rojda Şêxo",
        "email": "rojda.private@example.net",
        "governorate": "Duhok",
        "share": "name_email",
        "subject": "Dozan rakin",
        "body": "Birêz, ji kerema xwe dozan rakin.",
        "note": "Hevala min Jiyan di girtîgehê de ye.",
    }
    letters.start_letter(runtime.db, runtime.backend, letters.check_form(raw, "protect-hrds-iraq", "kmr"))
    runtime.close()
    blob = everything_in(redis_url)
    assert b"mailer.send_batch" in blob  # the tasks are there, waiting for a worker
    assert b"@example" not in blob
    for name in [n for names in NAMES.values() for n in names] + ["Rojda", "Jiyan", "dozan"]:
        assert name.encode() not in blob, name

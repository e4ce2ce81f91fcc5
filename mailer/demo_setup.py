"""``mailer demo``: a working engine in one folder, from the seed campaign and synthetic supporters.

Variables the user has set win over the demo's defaults, so the same demo can run against Redis workers or
another database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailer import campaigns, supporters, targets
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.vault import generate_key

SEED_CAMPAIGN = "protect-hrds-iraq"


def demo_settings(folder: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for a demo in ``folder``: its own database, outbox and signing key unless set otherwise."""
    env = dict(os.environ if environ is None else environ)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # the demo's database, outbox and keys: its owner's only
    env.setdefault("MAILER_DATABASE_URL", f"sqlite:///{folder.resolve() / 'mailer.db'}")
    env.setdefault("MAILER_OUTBOX_DIR", str(folder.resolve() / "outbox"))
    if not env.get("MAILER_SECRET_KEY"):
        env["MAILER_SECRET_KEY"] = _demo_file(folder / "secret.key", lambda: secrets.token_urlsafe(32))
    if not env.get("MAILER_DATA_KEY") and not env.get("MAILER_DATA_KEY_FILE"):
        _demo_file(folder / "data.key", generate_key)
        env["MAILER_DATA_KEY_FILE"] = str((folder / "data.key").resolve())
    return Settings.from_env(env, cwd=folder)


def _demo_file(path: Path, make: Callable[[], str]) -> str:
    """A random key kept in the demo folder (mode 0600), so that links and data stay readable from one
    run to the next."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
    return path.read_text().strip()


@dataclass(frozen=True)
class DemoPreparation:
    campaign: campaigns.CampaignSpec
    campaign_created: bool
    supporters: supporters.ImportReport
    targets: targets.TargetImportReport


def prepare_demo(runtime: Runtime) -> DemoPreparation:
    """Create the schema, load the seed campaign, the demo supporters and the demo officials (idempotent)."""
    upgrade_database(runtime.settings.database_url, runtime.vault)
    spec, created = campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SEED_CAMPAIGN)
    supporter_report = supporters.import_supporters(runtime.db, demo_dir() / "supporters.csv")
    target_report = targets.import_targets(runtime.db, demo_dir() / "officials.yaml")
    return DemoPreparation(spec, created, supporter_report, target_report)

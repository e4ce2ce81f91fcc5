"""``mailer demo``: a working engine in one folder, from the seed campaign and synthetic supporters.

Variables the user has set win over the demo's defaults, so the same demo can run against Redis workers or
another database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mailer import campaigns, supporters, targets
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database

SEED_CAMPAIGN = "protect-hrds-iraq"


def demo_settings(folder: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for a demo in ``folder``: its own database, outbox and signing key unless set otherwise."""
    env = dict(os.environ if environ is None else environ)
    folder.mkdir(parents=True, exist_ok=True)
    env.setdefault("MAILER_DATABASE_URL", f"sqlite:///{folder.resolve() / 'mailer.db'}")
    env.setdefault("MAILER_OUTBOX_DIR", str(folder.resolve() / "outbox"))
    if not env.get("MAILER_SECRET_KEY"):
        env["MAILER_SECRET_KEY"] = _demo_secret(folder)
    return Settings.from_env(env, cwd=folder)


def _demo_secret(folder: Path) -> str:
    """A random signing key kept in the demo folder, so links stay valid from one run to the next."""
    path = folder / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


@dataclass(frozen=True)
class DemoPreparation:
    campaign: campaigns.CampaignSpec
    campaign_created: bool
    supporters: supporters.ImportReport
    targets: targets.TargetImportReport


def prepare_demo(runtime: Runtime) -> DemoPreparation:
    """Create the schema, load the seed campaign, the demo supporters and the demo officials (idempotent)."""
    upgrade_database(runtime.settings.database_url)
    spec, created = campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SEED_CAMPAIGN)
    supporter_report = supporters.import_supporters(runtime.db, demo_dir() / "supporters.csv")
    target_report = targets.import_targets(runtime.db, demo_dir() / "officials.yaml")
    return DemoPreparation(spec, created, supporter_report, target_report)

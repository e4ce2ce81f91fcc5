"""The queries about dashboard accounts, their sessions and the audit log (mailer.accounts calls these)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailer.store.models import Account, AccountSession, AuditEntry
from mailer.store.repository import _changed, vault


def account_by_address(session: Session, address: str) -> Account | None:
    return session.scalar(select(Account).where(Account.email_index == vault(session).address_index(address)))


def accounts(session: Session, include_removed: bool = False) -> list[Account]:
    query = select(Account).order_by(Account.id)
    if not include_removed:
        query = query.where(Account.removed_at.is_(None))
    return list(session.scalars(query))


def active_admins(session: Session) -> int:
    return (
        session.scalar(select(func.count()).where(Account.role == "admin", Account.removed_at.is_(None))) or 0
    )


def add_account(session: Session, address: str, role: str, password_hash: str, now: dt.datetime) -> Account:
    account = Account(
        email=address,
        email_index=vault(session).address_index(address),
        role=role,
        password_hash=password_hash,
        created_at=now,
    )
    session.add(account)
    session.flush()
    return account


def session_by_hash(session: Session, token_hash: str) -> AccountSession | None:
    return session.scalar(select(AccountSession).where(AccountSession.token_hash == token_hash))


def add_session(session: Session, account_id: int, token_hash: str, stage: str, now: dt.datetime) -> int:
    row = AccountSession(
        account_id=account_id, token_hash=token_hash, stage=stage, created_at=now, last_seen_at=now
    )
    session.add(row)
    session.flush()
    return row.id


def delete_sessions(session: Session, account_id: int, keep: int | None = None) -> int:
    query = delete(AccountSession).where(AccountSession.account_id == account_id)
    if keep is not None:
        query = query.where(AccountSession.id != keep)
    return _changed(session, query)


def delete_stale_sessions(session: Session, idle_before: dt.datetime, created_before: dt.datetime) -> int:
    query = delete(AccountSession).where(
        (AccountSession.last_seen_at < idle_before) | (AccountSession.created_at < created_before)
    )
    return _changed(session, query)


def accept_step(session: Session, account_id: int, step: int) -> bool:
    """Record that the code of this time step was used; False when it (or a later one) already was, so
    that a code overheard or replayed is worth nothing, even by two requests at the same instant."""
    return bool(
        _changed(
            session,
            update(Account)
            .where(
                Account.id == account_id,
                (Account.totp_last_step.is_(None)) | (Account.totp_last_step < step),
            )
            .values(totp_last_step=step),
        )
    )


def add_audit(
    session: Session,
    account_id: int | None,
    action: str,
    subject: str,
    detail: dict[str, Any],
    origin: str,
    now: dt.datetime,
) -> None:
    session.add(
        AuditEntry(
            at=now, account_id=account_id, action=action, subject=subject, detail=detail, origin=origin
        )
    )


def audit_entries(session: Session, before_id: int | None, limit: int) -> list[tuple[AuditEntry, str | None]]:
    """Newest first, a keyset page, each with the address of the account that made it."""
    query = (
        select(AuditEntry, Account.email)
        .outerjoin(Account, Account.id == AuditEntry.account_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return [(entry, email) for entry, email in session.execute(query)]

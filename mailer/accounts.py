"""Who may run campaigns from the dashboard, how they prove it, and the record of what they changed.

Three roles, each allowed what the one before it is: a *viewer* reads counts and reports (never an
address), a *coordinator* also imports, launches and erases, an *admin* also manages accounts and keys.
Passwords are hashed with Argon2id; the second factor is TOTP (RFC 6238), required for admins, a code good
once. A signed-in browser holds a random token whose hash is a row here: sessions expire when idle and
after a fixed time, and "sign out everywhere" deletes them. Every change is appended to the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailer.errors import N_, MailerError, NotFoundError
from mailer.fields import FieldProblem, check_address
from mailer.locales import LOCALE_CODES
from mailer.store import Database
from mailer.store import accounts as store
from mailer.store.models import Account

ROLES = ("viewer", "coordinator", "admin")
PASSWORD_MIN = 12
PASSWORD_MAX = 256  # Argon2 takes anything; a megabyte "password" would only cost us time
IDLE_TIMEOUT = dt.timedelta(minutes=30)
SESSION_LIFETIME = dt.timedelta(hours=12)
SECOND_FACTOR_TIME = dt.timedelta(minutes=5)  # between the password and the code
ISSUER = "solidarity-mailer"
TOTP_WINDOW = 1  # one 30-second step either side: phones' clocks drift
TOUCH_EVERY = dt.timedelta(minutes=1)  # a session's last_seen is written at most this often

_hasher = PasswordHasher()
# Checked when an address is unknown, so that the answer takes as long as for a known one.
_UNKNOWN_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(MailerError):
    """A request about accounts that cannot be done as asked (the reason says why)."""


@dataclass(frozen=True)
class AccountInfo:
    id: int
    email: str
    role: str
    two_factor: bool
    locale: str | None
    created_at: dt.datetime
    removed_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "two_factor": self.two_factor,
            "locale": self.locale,
            "created_at": self.created_at.isoformat(),
            "removed_at": self.removed_at.isoformat() if self.removed_at else None,
        }


@dataclass(frozen=True)
class SignedIn:
    """The person behind a session token, and how far they got."""

    account: AccountInfo
    session_id: int
    complete: bool  # password and, where owed, the second factor

    @property
    def must_enrol(self) -> bool:
        """An admin without a second factor may do nothing but set one up."""
        return self.account.role == "admin" and not self.account.two_factor


def _info(account: Account) -> AccountInfo:
    return AccountInfo(
        id=account.id,
        email=account.email,
        role=account.role,
        two_factor=account.totp_confirmed_at is not None,
        locale=account.locale,
        created_at=account.created_at,
        removed_at=account.removed_at,
    )


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what needs ``needed``."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(N_("unknown role %(role)s (one of: %(roles)s)"), role=role, roles=", ".join(ROLES))
    return role


def check_password(password: str) -> str:
    """A password long enough to resist guessing; anything else (spaces, any script) is welcome."""
    if len(password) < PASSWORD_MIN:
        raise AccountError(N_("the password must have at least %(num)d characters"), num=PASSWORD_MIN)
    if len(password) > PASSWORD_MAX:
        raise AccountError(N_("the password must have at most %(num)d characters"), num=PASSWORD_MAX)
    if len(set(password)) < 5:
        raise AccountError(N_("the password repeats too few characters; choose a longer phrase"))
    return password


def _address(address: str) -> str:
    try:
        return check_address(address)
    except FieldProblem as problem:
        raise AccountError(N_("%(address)s: %(reason)s"), address=address, reason=problem) from problem


def add_account(db: Database, address: str, role: str, password: str, now: dt.datetime) -> AccountInfo:
    email, role, password = _address(address), check_role(role), check_password(password)
    with db.session() as session:
        existing = store.account_by_address(session, email)
        if existing is not None and existing.removed_at is None:
            raise AccountError(N_("an account with the address %(address)s exists"), address=email)
        if existing is not None:  # a removed account comes back, with a new password and no old factor
            existing.role, existing.password_hash = role, _hasher.hash(password)
            existing.totp_secret = existing.totp_confirmed_at = existing.totp_last_step = None
            existing.removed_at = None
            account = existing
        else:
            account = store.add_account(session, email, role, _hasher.hash(password), now)
        session.commit()
        return _info(account)


def list_accounts(db: Database, include_removed: bool = False) -> list[AccountInfo]:
    with db.session() as session:
        return [_info(a) for a in store.accounts(session, include_removed)]


def _account(session: Any, address: str) -> Account:
    account = store.account_by_address(session, address)
    if account is None or account.removed_at is not None:
        raise NotFoundError(N_("no account has the address %(address)s"), address=address)
    return account


def get_account(db: Database, account_id: int) -> AccountInfo:
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None or account.removed_at is not None:
            raise NotFoundError(N_("no such account"))
        return _info(account)


def _keep_an_admin(session: Any, account: Account) -> None:
    if account.role == "admin" and store.active_admins(session) <= 1:
        raise AccountError(N_("this is the last admin account; add another admin first"))


def remove_account(db: Database, address: str, now: dt.datetime) -> AccountInfo:
    """The account can never sign in again; its row stays, so the audit log still names it."""
    with db.session() as session:
        account = _account(session, address)
        _keep_an_admin(session, account)
        account.removed_at = now
        account.totp_secret = None
        store.delete_sessions(session, account.id)
        session.commit()
        return _info(account)


def change_role(db: Database, address: str, role: str) -> AccountInfo:
    role = check_role(role)
    with db.session() as session:
        account = _account(session, address)
        if role != "admin":
            _keep_an_admin(session, account)
        account.role = role
        store.delete_sessions(session, account.id)  # the new role applies from the next sign-in
        session.commit()
        return _info(account)


def reset_password(db: Database, address: str, password: str, reset_two_factor: bool = False) -> AccountInfo:
    """A new password; every session of the account ends. With ``reset_two_factor`` the second factor is
    forgotten too (a lost phone): the person sets up a new one at the next sign-in."""
    password = check_password(password)
    with db.session() as session:
        account = _account(session, address)
        account.password_hash = _hasher.hash(password)
        if reset_two_factor:
            account.totp_secret = account.totp_confirmed_at = account.totp_last_step = None
        store.delete_sessions(session, account.id)
        session.commit()
        return _info(account)


def change_password(db: Database, account_id: int, current: str, new: str, session_id: int) -> None:
    """The signed-in person's own change: the current password is asked again; other sessions end."""
    new = check_password(new)
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None or not _verify(account.password_hash, current):
            raise AccountError(N_("the current password is not right"))
        account.password_hash = _hasher.hash(new)
        store.delete_sessions(session, account_id, keep=session_id)
        session.commit()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password[:PASSWORD_MAX])
    except (VerificationError, InvalidHashError):
        return False


def authenticate(db: Database, address: str, password: str) -> AccountInfo | None:
    """The account for this address and password, or None (the same time either way)."""
    with db.session() as session:
        account = store.account_by_address(session, address.strip()) if "@" in address else None
        if account is None or account.removed_at is not None:
            _verify(_UNKNOWN_HASH, password)
            return None
        if not _verify(account.password_hash, password):
            return None
        if _hasher.check_needs_rehash(account.password_hash):  # parameters raised since it was set
            account.password_hash = _hasher.hash(password)
            session.commit()
        return _info(account)


# Sessions


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(db: Database, account: AccountInfo, now: dt.datetime) -> str:
    """A new session token. It is complete at once only when no second factor is set up; otherwise it
    is good for nothing but the code, for a few minutes."""
    token = secrets.token_urlsafe(32)
    stage = "password" if account.two_factor else "full"
    with db.session() as session:
        store.add_session(session, account.id, _hash_token(token), stage, now)
        session.commit()
    return token


def signed_in(db: Database, token: str | None, now: dt.datetime) -> SignedIn | None:
    """The person behind a token, or None for an unknown, expired or removed one (expired ones go)."""
    if not token or len(token) > 100:
        return None
    with db.session() as session:
        row = store.session_by_hash(session, _hash_token(token))
        if row is None:
            return None
        account = session.get(Account, row.account_id)
        lifetime = SESSION_LIFETIME if row.stage == "full" else SECOND_FACTOR_TIME
        expired = now - row.last_seen_at > IDLE_TIMEOUT or now - row.created_at > lifetime
        if account is None or account.removed_at is not None or expired:
            session.delete(row)
            session.commit()
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now
            session.commit()
        return SignedIn(_info(account), row.id, row.stage == "full")


def complete_session(db: Database, token: str, now: dt.datetime) -> str:
    """After the second factor: the old token is retired and a new one issued (whoever saw the first,
    before the code, holds nothing)."""
    new_token = secrets.token_urlsafe(32)
    with db.session() as session:
        row = store.session_by_hash(session, _hash_token(token))
        if row is None:
            raise AccountError(N_("your sign-in expired; please start again"))
        row.token_hash, row.stage, row.last_seen_at = _hash_token(new_token), "full", now
        session.commit()
    return new_token


def restart_sessions(db: Database, account_id: int, now: dt.datetime) -> str:
    """End every session of the account and open one, complete, for this browser (after the second
    factor was set up: other browsers signed in with the password alone must now give a code)."""
    token = secrets.token_urlsafe(32)
    with db.session() as session:
        store.delete_sessions(session, account_id)
        store.add_session(session, account_id, _hash_token(token), "full", now)
        session.commit()
    return token


def close_session(db: Database, token: str) -> None:
    with db.session() as session:
        row = store.session_by_hash(session, _hash_token(token))
        if row is not None:
            session.delete(row)
            session.commit()


def close_all_sessions(db: Database, account_id: int) -> int:
    """Sign out everywhere, this browser included."""
    with db.session() as session:
        count = store.delete_sessions(session, account_id)
        session.commit()
        return count


def forget_stale_sessions(db: Database, now: dt.datetime) -> int:
    with db.session() as session:
        count = store.delete_stale_sessions(session, now - IDLE_TIMEOUT, now - SESSION_LIFETIME)
        session.commit()
        return count


def set_locale(db: Database, account_id: int, code: str) -> None:
    if code not in LOCALE_CODES:
        raise AccountError(N_("unknown language %(code)s"), code=code)
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is not None:
            account.locale = code
            session.commit()


# The second factor


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str  # otpauth://, what the QR code carries


def start_enrolment(db: Database, account_id: int) -> Enrolment:
    """A new secret, kept unconfirmed until a code from it is typed (a half-done setup locks nobody out)."""
    secret = pyotp.random_base32()
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise NotFoundError(N_("no such account"))
        if account.totp_confirmed_at is not None:
            raise AccountError(N_("two-factor sign-in is already set up for this account"))
        account.totp_secret = secret
        session.commit()
        return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=account.email, issuer_name=ISSUER))


def pending_enrolment(db: Database, account_id: int) -> Enrolment | None:
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None or account.totp_secret is None or account.totp_confirmed_at is not None:
            return None
        secret = account.totp_secret
        return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=account.email, issuer_name=ISSUER))


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    code = "".join(code.split())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    moment = now.timestamp()
    for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
        at = moment + offset * totp.interval
        if secrets.compare_digest(totp.at(at), code):
            return int(at // totp.interval)
    return None


def confirm_enrolment(db: Database, account_id: int, code: str, now: dt.datetime) -> bool:
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None or account.totp_secret is None or account.totp_confirmed_at is not None:
            return False
        step = _matching_step(account.totp_secret, code, now)
        if step is None or not store.accept_step(session, account_id, step):
            return False
        account.totp_confirmed_at = now
        session.commit()
        return True


def check_code(db: Database, account_id: int, code: str, now: dt.datetime) -> bool:
    """A code from the account's authenticator, never accepted twice."""
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None or account.totp_secret is None or account.totp_confirmed_at is None:
            return False
        step = _matching_step(account.totp_secret, code, now)
        if step is None or not store.accept_step(session, account_id, step):
            return False
        session.commit()
        return True


def current_code(secret: str, at: float | None = None) -> str:
    """The code an authenticator shows (for tests and the command line's own checks)."""
    return pyotp.TOTP(secret).at(time.time() if at is None else at)


# The audit log

COMMAND_LINE = "command line"


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: dt.datetime
    account: str | None  # the address of the account, None for the command line
    action: str
    subject: str
    detail: dict[str, Any]
    origin: str


def record(
    db: Database,
    account_id: int | None,
    action: str,
    subject: str = "",
    detail: dict[str, Any] | None = None,
    origin: str = COMMAND_LINE,
    now: dt.datetime | None = None,
) -> None:
    """Append one change to the audit log. ``subject`` and ``detail`` name records by id or slug, never
    a supporter's address."""
    with db.session() as session:
        store.add_audit(
            session,
            account_id,
            action,
            subject[:200],
            detail or {},
            origin,
            now or dt.datetime.now(dt.UTC),
        )
        session.commit()


def audit_log(db: Database, before_id: int | None = None, limit: int = 100) -> list[AuditRow]:
    with db.session() as session:
        return [
            AuditRow(e.id, e.at, email, e.action, e.subject, dict(e.detail), e.origin)
            for e, email in store.audit_entries(session, before_id, limit)
        ]

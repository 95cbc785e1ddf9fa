"""API keys: the table holds only a salted hash of each key, never the key itself.

A key is ``ldk_<43 url-safe characters>`` (256 random bits). Its first ``PREFIX_LEN`` characters are stored
in clear as ``prefix`` so a presented key finds its row with an index lookup; the row's ``key_hash`` is
sha256(salt || key) with a random per-key salt, and is compared in constant time (``hmac.compare_digest``).
Keys can also be given in the environment (``LINDYN_API_KEYS``); those are compared the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, Uuid, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UtcDateTime, utcnow

KEY_PREFIX = "ldk_"
PREFIX_LEN = 12  # "ldk_" + 8 characters: enough to find a row, far too few to guess the rest


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(PREFIX_LEN), index=True)
    salt: Mapped[str] = mapped_column(String(32))  # 16 random bytes, hex
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256(salt || key), hex
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


def create_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """A new key: its row (added to the session) and the key itself, which is shown once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    row = ApiKey(id=uuid.uuid4(), name=name, prefix=key[:PREFIX_LEN], salt=salt, key_hash=_hash(salt, key),
                 created_at=utcnow())
    session.add(row)
    return row, key


def list_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def revoke_key(session: Session, ident: str) -> int:
    """Revoke the keys whose id or prefix is ``ident`` (a whole key works too); how many were revoked."""
    try:
        by_id = ApiKey.id == uuid.UUID(ident)
    except ValueError:
        by_id = None
    cond = ApiKey.prefix == ident[:PREFIX_LEN] if ident.startswith(KEY_PREFIX) else by_id
    if cond is None:
        return 0
    result = session.execute(update(ApiKey).where(cond, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def count_keys(session: Session) -> int:
    """How many keys the table holds, revoked ones included."""
    return session.scalar(select(func.count()).select_from(ApiKey)) or 0


def any_stored_key(session: Session) -> bool:
    """Whether the table has any key, revoked ones included (revoking every key does not open the service)."""
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def check_key(session: Session | None, presented: str, env_keys: Sequence[str]) -> str:
    """``ok``, ``revoked`` or ``invalid``. Every comparison is constant-time; no key is logged."""
    digest = hashlib.sha256(presented.encode()).digest()
    ok = False
    for k in env_keys:  # every configured key is compared, the match does not end the loop early
        ok |= hmac.compare_digest(digest, hashlib.sha256(k.encode()).digest())
    if ok:
        return "ok"
    if session is None or not presented.startswith(KEY_PREFIX):
        return "invalid"
    verdict = "invalid"
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == presented[:PREFIX_LEN])):
        if hmac.compare_digest(_hash(row.salt, presented), row.key_hash):
            verdict = "ok" if row.revoked_at is None else "revoked"
    return verdict

"""Sign-in, tokens and rate limits.

Tokens are JWTs (HS256, pyjwt) signed with the secret the caller passes (``MOTCUA_SECRET_KEY``
through ``api``); the same token is the API's bearer token and the pages' session cookie.
Rate limits count hits in the ``rate_hit`` table, so they hold across every API process sharing
the database (not per process). Usernames appear in buckets; ID numbers and phones never do.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import delete, func
from sqlmodel import select

from services.context import Context
from services.directory import verify_password
from services.errors import DomainError
from states.lifecycle import SYSTEM
from storage.models import User
from storage.models_api import RateHit

TOKEN_HOURS = 10
ALGORITHM = "HS256"

# failed sign-ins: per username and per client address, in a sliding window
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGN_IN_MAX_PER_USER = 5
SIGN_IN_MAX_PER_CLIENT = 20
# citizen lookups: every lookup counts (a success too), per client and per dossier code
LOOKUP_WINDOW = timedelta(minutes=10)
LOOKUP_MAX_PER_CLIENT = 30
LOOKUP_MAX_PER_CODE = 10


class BadCredentials(DomainError):
    code = "bad_credentials"

    def __init__(self) -> None:
        super().__init__("Tên đăng nhập hoặc mật khẩu không đúng", "Wrong username or password")


class NotAuthenticated(DomainError):
    code = "not_authenticated"

    def __init__(self, why_vi: str = "Cần đăng nhập", why_en: str = "Sign-in required") -> None:
        super().__init__(why_vi, why_en)


class Forbidden(DomainError):
    code = "forbidden"


class TooManyAttempts(DomainError):
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Quá nhiều lần thử; hãy thử lại sau {max(1, retry_after // 60)} phút",
            f"Too many attempts; try again in {max(1, retry_after // 60)} minute(s)",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Identity:
    username: str
    full_name: str
    role: str
    unit_code: str


def _hits(ctx: Context, bucket: str, since: datetime) -> int:
    with ctx.uow() as uow:
        count = uow.session.exec(
            select(func.count())
            .select_from(RateHit)
            .where(
                RateHit.bucket == bucket,
                RateHit.at >= since,
            )
        ).one()
    return int(count)


def _hit(ctx: Context, *buckets: str) -> None:
    now = ctx.clock.now()
    with ctx.uow() as uow:
        for bucket in buckets:
            uow.session.add(RateHit(bucket=bucket, at=now))
        uow.commit()


def _clear(ctx: Context, bucket: str) -> None:
    with ctx.uow() as uow:
        uow.session.execute(delete(RateHit).where(RateHit.bucket == bucket))  # type: ignore[arg-type]
        uow.commit()


def check_rate(ctx: Context, limits: list[tuple[str, int]], window: timedelta) -> None:
    """Raise ``TooManyAttempts`` when a bucket already holds its maximum in the window."""
    since = ctx.clock.now() - window
    for bucket, maximum in limits:
        if _hits(ctx, bucket, since) >= maximum:
            raise TooManyAttempts(int(window.total_seconds()))


def sign_in(ctx: Context, username: str, password: str, client: str) -> Identity:
    """Check the password (argon2); failures are counted per user and per client address."""
    username = username.strip()
    user_bucket = f"signin:user:{username.lower()}"
    client_bucket = f"signin:client:{client}"
    check_rate(
        ctx,
        [(user_bucket, SIGN_IN_MAX_PER_USER), (client_bucket, SIGN_IN_MAX_PER_CLIENT)],
        SIGN_IN_WINDOW,
    )
    with ctx.uow() as uow:
        user = uow.session.exec(select(User).where(User.username == username)).first()
    if user is None or not user.active or not verify_password(user.password_hash, password):
        _hit(ctx, user_bucket, client_bucket)
        raise BadCredentials()
    _clear(ctx, user_bucket)
    return Identity(user.username, user.full_name, user.role, user.unit_code)


def count_lookup(ctx: Context, code: str, client: str) -> None:
    """Count one citizen lookup; refuse when the client or the code is over its limit."""
    code_key = hashlib.sha256(code.strip().upper().encode()).hexdigest()[:24]
    buckets = [(f"lookup:client:{client}", LOOKUP_MAX_PER_CLIENT),
               (f"lookup:code:{code_key}", LOOKUP_MAX_PER_CODE)]  # fmt: skip
    check_rate(ctx, buckets, LOOKUP_WINDOW)
    _hit(ctx, *(b for b, _ in buckets))


def prune_hits(ctx: Context, older_than: timedelta = timedelta(days=1)) -> int:
    with ctx.uow() as uow:
        result = uow.session.execute(
            delete(RateHit).where(RateHit.at < ctx.clock.now() - older_than)  # type: ignore[arg-type]
        )
        uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def _key(secret: str) -> bytes:
    """A 256-bit HMAC key derived from the configured secret, whatever its length."""
    return hashlib.sha256(b"motcua-token\x00" + secret.encode()).digest()


def issue_token(identity: Identity, secret: str, now: datetime, hours: int = TOKEN_HOURS) -> str:
    claims: dict[str, Any] = {
        "sub": identity.username,
        "name": identity.full_name,
        "role": identity.role,
        "unit": identity.unit_code,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=hours)).timestamp()),
    }
    return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


def service_identity(unit_code: str) -> Identity:
    """Another agency's system (role ``system``) answering an inter-agency step of its unit."""
    return Identity(f"system@{unit_code}", f"Hệ thống {unit_code}", SYSTEM, unit_code)


def read_token(token: str, secret: str, now: datetime) -> Identity:
    identity, expires = _verified(token, secret)
    if expires <= int(now.timestamp()):
        raise NotAuthenticated("Phiên đăng nhập đã hết hạn", "The session has expired")
    return identity


@functools.lru_cache(maxsize=4096)
def _verified(token: str, secret: str) -> tuple[Identity, int]:
    """The identity a token carries and its expiry (seconds), once its signature is checked.

    Cached: a token is immutable signed data, and an officer sends the same one with every
    request (the decode and HMAC were ~4 % of a transition's CPU); the expiry is compared with
    the clock on every use (``read_token``). A refused token raises and is not cached."""
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "role", "unit"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise NotAuthenticated("Phiên đăng nhập không hợp lệ", "Invalid token") from None
    identity = Identity(
        str(claims["sub"]), str(claims.get("name", "")), str(claims["role"]), str(claims["unit"])
    )
    return identity, int(claims["exp"])

"""Who is calling: bearer tokens issued by `orisel token` (stored as hashes in the job
database) and OIDC JWTs verified offline against a JWKS file; a verified client certificate
(mutual TLS) names a service principal.

A principal owns the jobs it submits and sees only those; an admin sees all. The principal of
the call in progress lives in a context variable the server's interceptor sets, so the job
verbs read it without threading it through every signature.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from orisel.control.db import JobDB
from orisel.control.schema import NAME_LEN, tokens
from orisel.kernel.errors import InvalidArgument, NotFound, Unauthenticated

TOKEN_PREFIX = "orisel"
ID_BYTES, SECRET_BYTES = 8, 32
USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._:-")


@dataclass(frozen=True)
class Principal:
    name: str
    admin: bool = False

    @property
    def owner(self) -> str | None:
        """The owner whose jobs this principal may see; None: everyone's (admin)."""
        return None if self.admin else self.name


# Without authentication (a loopback development server) every caller is this admin.
ANONYMOUS = Principal("anonymous", admin=True)
CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=ANONYMOUS)


def current() -> Principal:
    return CURRENT.get()


def check_user(name: str) -> str:
    if not 1 <= len(name) <= NAME_LEN or not set(name) <= USER_CHARS:
        raise InvalidArgument(
            "user", f"1..{NAME_LEN} characters of letters, digits and @._:-", name
        )
    return name


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    admin: bool
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class Tokens:
    """Bearer tokens `orisel_<id>_<secret>`: only the secret's sha256 is stored, compared in
    constant time; revocation and expiry take effect on the next call."""

    def __init__(self, db: JobDB) -> None:
        self.db = db

    def create(self, user: str, admin: bool = False, ttl_s: float | None = None) -> str:
        check_user(user)
        if ttl_s is not None and ttl_s <= 0:
            raise InvalidArgument("expires", "a positive lifetime", ttl_s)
        token_id, secret = secrets.token_hex(ID_BYTES), secrets.token_urlsafe(SECRET_BYTES)
        now = time.time()
        with self.db.begin() as c:
            c.execute(
                insert(tokens).values(
                    id=token_id,
                    user=user,
                    secret_sha256=_digest(secret),
                    admin=admin,
                    created_at=now,
                    expires_at=now + ttl_s if ttl_s else None,
                )
            )
        return f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def list(self) -> list[TokenInfo]:
        with self.db.connect() as c:
            rows = c.execute(select(tokens).order_by(tokens.c.created_at)).all()
        return [
            TokenInfo(r.id, r.user, r.admin, r.created_at, r.expires_at, r.revoked_at) for r in rows
        ]

    def revoke(self, token_id: str) -> None:
        with self.db.begin() as c:
            done = c.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            ).rowcount
        if not done:
            raise NotFound(f"token {token_id} does not exist or is already revoked")

    def verify(self, token: str) -> Principal:
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != TOKEN_PREFIX or len(token_id) != 2 * ID_BYTES or not secret:
            raise Unauthenticated("the bearer token is not an orisel token")
        with self.db.connect() as c:
            row = c.execute(select(tokens).where(tokens.c.id == token_id)).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            raise Unauthenticated("the bearer token is not valid")
        if row.revoked_at is not None:
            raise Unauthenticated(f"token {token_id} was revoked")
        if row.expires_at is not None and row.expires_at < time.time():
            raise Unauthenticated(f"token {token_id} has expired")
        return Principal(row.user, bool(row.admin))


@dataclass(frozen=True)
class OidcConfig:
    jwks_file: Path
    issuer: str
    audience: str
    admin_group: str = ""  # members (the `groups` claim) are admins
    leeway_s: float = 30.0


class Jwts:
    """OIDC access tokens verified offline: signature against the JWKS file's keys (RS256 or
    ES256 only: never `none` or a shared secret), issuer, audience, expiry."""

    ALGORITHMS: Sequence[str] = ("RS256", "ES256")

    def __init__(self, config: OidcConfig) -> None:
        import jwt

        self.config = config
        keys = json.loads(Path(config.jwks_file).read_text())
        self._keys = {k.get("kid"): jwt.PyJWK(k) for k in keys.get("keys", [])}
        if not self._keys:
            raise InvalidArgument("oidc_jwks_file", "a JWKS file with at least one key", None)

    def verify(self, token: str) -> Principal:
        import jwt

        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if kid is not None else next(iter(self._keys.values()))
            if key is None:
                raise Unauthenticated(f"the JWT's key {kid!r} is not in the JWKS")
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(self.ALGORITHMS),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the JWT is not valid: {exc}") from exc
        return Principal(oidc_user(str(claims["sub"])), self._admin(claims.get("groups") or []))

    def _admin(self, groups: object) -> bool:
        """Membership by exact name in a list: `in` on a string would match any substring
        (`ops` in "devops-readonly"), so a claim of another shape is refused outright."""
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise Unauthenticated("the JWT's groups claim must be a list of group names")
        return bool(self.config.admin_group) and self.config.admin_group in groups


def oidc_user(subject: str) -> str:
    """The principal of an OIDC subject: `oidc:<sub>` when the subject is made of name
    characters (it names the user's folder users/<principal>/), else a digest of it (issuers
    write subjects like `auth0|5f3c...`), so every subject gets one name of its own."""
    name = f"oidc:{subject}"
    if len(name) <= NAME_LEN and set(subject) <= USER_CHARS and subject:
        return name
    return f"oidc:{hashlib.sha256(subject.encode()).hexdigest()[:40]}"


class Authenticator:
    """A call's principal from its metadata (`authorization: Bearer ...`) or, with mutual
    TLS, its verified client certificate; else UNAUTHENTICATED."""

    def __init__(self, tokens: Tokens, jwts: Jwts | None = None, cert_admins: bool = True):
        self.tokens = tokens
        self.jwts = jwts
        self.cert_admins = cert_admins

    def __call__(
        self, metadata: Sequence[tuple[str, Any]], auth_context: dict[str, Any]
    ) -> Principal:
        header = next((str(v) for k, v in metadata if k == "authorization"), None)
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value:
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            if value.startswith(TOKEN_PREFIX + "_"):
                return self.tokens.verify(value)
            if self.jwts is not None and value.count(".") == 2:
                return self.jwts.verify(value)
            raise Unauthenticated("the bearer token is neither an orisel token nor a JWT")
        names = auth_context.get("x509_common_name") or []
        if names:
            # A certificate our CA signed: a service of this deployment, not a user.
            return Principal(f"service:{names[0].decode()}", admin=self.cert_admins)
        raise Unauthenticated(
            "no credentials: send 'authorization: Bearer <token>' (orisel token create)"
        )

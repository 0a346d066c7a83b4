"""Authentication and authorisation core: roles, rights, password hashes, sessions, API tokens.

Roles map to rights (:data:`ROLE_RIGHTS`); a :class:`Principal` is who is asking, with the sites
they may see. The web layer turns a cookie or a bearer token into a Principal through
:class:`Accounts` and checks rights and sites in one middleware. Passwords are argon2id hashes
(:mod:`vms.passwords` hashes and checks them, off the database threads); session and API tokens are
random and stored only as SHA-256 digests. An API token has a scope (:data:`TOKEN_SCOPES`) that
caps what it may do below its user's rights, an expiry, and dies with a password change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from vms.clock import US_PER_S, Clock
from vms.db import models as m
from vms.passwords import (
    AccountError,
    HashedPassword,
    check_password_strength,
    hash_new_password,
)

ROLES = ("admin", "installer", "operator", "viewer")

RIGHTS = (
    "live",            # watch live video and snapshots
    "playback",        # timeline and recorded video
    "export",          # export evidence clips
    "ptz",             # move PTZ cameras
    "door",            # pulse relays (door release)
    "manage_cameras",  # discover, adopt, configure, remove cameras
    "manage_users",    # users, sites, grants
    "audit",           # read the audit log
)

ROLE_RIGHTS: dict[str, frozenset[str]] = {
    "admin": frozenset(RIGHTS),
    "installer": frozenset({"live", "playback", "ptz", "manage_cameras"}),
    "operator": frozenset({"live", "playback", "export", "ptz"}),
    "viewer": frozenset({"live", "playback", "door"}),
}

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

# What an API token may do, each including the one before: ``read`` only reads (GET); ``control``
# also acts within the user's rights (PTZ, doors, exports, holds, cameras); ``admin`` also changes
# accounts: passwords, users, sites, grants and API tokens.
TOKEN_SCOPES = ("read", "control", "admin")
DEFAULT_SCOPE = "control"
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 3650
DAY_US = 86_400 * US_PER_S
# a token's last use is written at most this often (it is a write on every API call otherwise)
TOKEN_USE_RESOLUTION_US = 60 * US_PER_S


def scope_allows(have: str, need: str) -> bool:
    """Whether a token of scope ``have`` may call a route needing ``need``."""
    return TOKEN_SCOPES.index(have) >= TOKEN_SCOPES.index(need)


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``site_ids`` is None for admins (every site)."""

    user_id: int
    username: str
    role: str
    site_ids: frozenset[int] | None
    language: str = ""
    csrf_token: str = ""
    via: str = "session"  # session | token
    rights: frozenset[str] = field(default_factory=frozenset)
    token_scope: str = ""  # with via == "token": one of TOKEN_SCOPES
    token_id: int | None = None

    def can(self, right: str) -> bool:
        return right in self.rights

    def sees_site(self, site_id: int) -> bool:
        return self.site_ids is None or site_id in self.site_ids


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def random_password() -> str:
    return secrets.token_urlsafe(12)


def _hashed(password: str | HashedPassword) -> str:
    """A plain password (CLI) is checked and hashed here; the server hashes on its password pool
    and passes a :class:`HashedPassword`, so no argon2 runs on the database writer."""
    hashed = password if isinstance(password, HashedPassword) else hash_new_password(password)
    return hashed.value


class Accounts:
    """Users, sites, grants, sessions and API tokens. Sync methods: run them through the gateway
    (``await gateway.write(accounts.create_user, ...)``) so writes stay on the writer thread.

    No method checks a password (the server does that on its password pool). A new password is
    given either as a :class:`HashedPassword`, hashed beforehand (by the server on its password
    pool, by the CLI before it opens a transaction), or as text, hashed here inside the caller's
    transaction (start-up and tests only: argon2 would hold the writer)."""

    def __init__(self, clock: Clock, session_hours: int = 12) -> None:
        self.clock = clock
        self.session_us = session_hours * 3600 * US_PER_S

    # --- sites ---
    def create_site(self, name: str, timezone: str = "UTC") -> m.Site:
        from vms.clock import zone

        name = name.strip()
        if not name or len(name) > 200:
            raise AccountError("site name must be 1–200 characters")
        zone(timezone)
        if m.Site.select().where(m.Site.name == name).exists():
            raise AccountError(f"site {name!r} already exists")
        return m.Site.create(name=name, timezone=timezone, created_us=self.clock.now_us())

    def get_or_create_site(self, name: str, timezone: str = "UTC") -> m.Site:
        site = m.Site.get_or_none(m.Site.name == name)
        return site if site is not None else self.create_site(name, timezone)

    # --- users ---
    def create_user(self, username: str, password: str | HashedPassword, role: str,
                    site_names: list[str] | tuple[str, ...] = ()) -> m.User:
        if not USERNAME_RE.fullmatch(username):  # match() let "name\n" through ($ before \n)
            raise AccountError(
                f"username {username!r}: use 1–64 letters, digits, '_', '.', '@' or '-'")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if isinstance(password, str):
            check_password_strength(password)
        if m.User.select().where(m.User.username == username).exists():
            raise AccountError(f"user {username!r} already exists")
        now = self.clock.now_us()
        user = m.User.create(username=username, password_hash=_hashed(password), role=role,
                             created_us=now, password_changed_us=now)
        for name in site_names:
            self.grant(username, name)
        return user

    def grant(self, username: str, site_name: str) -> None:
        user = self._user(username)
        site = m.Site.get_or_none(m.Site.name == site_name)
        if site is None:
            raise AccountError(f"no site named {site_name!r}")
        m.UserSite.insert(user=user, site=site).on_conflict_ignore().execute()

    def revoke(self, username: str, site_name: str) -> None:
        user = self._user(username)
        site = m.Site.get_or_none(m.Site.name == site_name)
        if site is None:
            raise AccountError(f"no site named {site_name!r}")
        m.UserSite.delete().where((m.UserSite.user == user) & (m.UserSite.site == site)).execute()

    def set_password(self, username: str, password: str | HashedPassword) -> int:
        """Change a password; every session of that user ends and every API token is revoked.
        Returns the number of tokens revoked."""
        password_hash = _hashed(password)
        user = self._user(username)
        user.password_hash = password_hash
        user.password_changed_us = self.clock.now_us()
        user.save()
        m.Session.delete().where(m.Session.user == user).execute()
        return int(m.ApiToken.update(revoked=True).where(
            (m.ApiToken.user == user) & (~m.ApiToken.revoked)).execute())

    def set_role(self, username: str, role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        user = self._user(username)
        user.role = role
        user.save()

    def update_user(self, username: str, *, role: str | None = None,
                    sites: list[str] | None = None, disabled: bool | None = None,
                    password: str | HashedPassword | None = None) -> dict[str, object]:
        """Change what is given; returns the changes made (never the password)."""
        user = self._user(username)
        changes: dict[str, object] = {}
        if role is not None and role != user.role:
            if role not in ROLES:
                raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
            user.role = role
            changes["role"] = role
        if disabled is not None and disabled != user.disabled:
            user.disabled = disabled
            changes["disabled"] = disabled
        if changes:
            user.save()
        if sites is not None:
            wanted = {}
            for name in sites:
                site = m.Site.get_or_none(m.Site.name == name)
                if site is None:
                    raise AccountError(f"no site named {name!r}")
                wanted[site.id] = name
            m.UserSite.delete().where((m.UserSite.user == user) &
                                      (m.UserSite.site.not_in(list(wanted) or [0]))).execute()
            for site_id in wanted:
                m.UserSite.insert(user=user, site=site_id).on_conflict_ignore().execute()
            changes["sites"] = sorted(wanted.values())
        if password:
            revoked = self.set_password(username, password)
            changes["password"] = "changed"  # noqa: S105 - a change marker, not a secret
            if revoked:
                changes["tokens_revoked"] = revoked
        if changes.get("disabled"):
            m.Session.delete().where(m.Session.user == user).execute()
        return changes

    def user_count(self) -> int:
        return int(m.User.select().count())

    def set_language(self, user_id: int, language: str) -> None:
        m.User.update(language=language).where(m.User.id == user_id).execute()

    def list_users(self) -> list[dict[str, object]]:
        rows = []
        for user in m.User.select().order_by(m.User.username):
            sites = [g.site.name for g in
                     m.UserSite.select(m.UserSite, m.Site).join(m.Site).where(m.UserSite.user == user)]
            rows.append({"id": user.id, "username": user.username, "role": user.role,
                         "disabled": user.disabled, "sites": sorted(sites),
                         "created_us": user.created_us})
        return rows

    def _user(self, username: str) -> m.User:
        user = m.User.get_or_none(m.User.username == username)
        if user is None:
            raise AccountError(f"no user named {username!r}")
        return user

    def principal_for(self, user: m.User, csrf_token: str = "", via: str = "session") -> Principal:
        site_ids: frozenset[int] | None
        if user.role == "admin":
            site_ids = None
        else:
            site_ids = frozenset(
                g.site_id for g in m.UserSite.select(m.UserSite.site).where(m.UserSite.user == user))
        return Principal(user_id=user.id, username=user.username, role=user.role,
                         site_ids=site_ids, language=user.language, csrf_token=csrf_token, via=via,
                         rights=ROLE_RIGHTS[user.role])

    # --- login and sessions ---
    def password_hash_of(self, username: str) -> tuple[int, str] | None:
        """(user id, argon2 hash) of an enabled user, None for an unknown or disabled one. The
        check itself runs on the password pool, never inside a database job."""
        row = (m.User.select(m.User.id, m.User.password_hash)
               .where((m.User.username == username) & (~m.User.disabled)).first())
        return None if row is None else (int(row.id), str(row.password_hash))

    def user_by_id(self, user_id: int) -> m.User:
        user = m.User.get_or_none(m.User.id == user_id)
        if user is None:
            raise AccountError(f"no user with id {user_id}")
        return user

    def open_session(self, user: m.User, address: str) -> tuple[str, str]:
        """A new session: returns (cookie token, csrf token)."""
        token = new_token()
        csrf = secrets.token_urlsafe(24)
        now = self.clock.now_us()
        m.Session.create(token_hash=token_digest(token), user=user, csrf_token=csrf,
                         created_us=now, expires_us=now + self.session_us, address=address[:64])
        m.Session.delete().where(m.Session.expires_us < now).execute()
        return token, csrf

    def session_principal(self, token: str) -> Principal | None:
        row = (m.Session.select(m.Session, m.User).join(m.User)
               .where(m.Session.token_hash == token_digest(token)).first())
        if row is None or row.expires_us < self.clock.now_us() or row.user.disabled:
            return None
        if row.created_us < row.user.password_changed_us:
            return None
        return self.principal_for(row.user, csrf_token=row.csrf_token, via="session")

    def close_session(self, token: str) -> None:
        m.Session.delete().where(m.Session.token_hash == token_digest(token)).execute()

    # --- API tokens ---
    def create_api_token(self, username: str, name: str, scope: str = DEFAULT_SCOPE,
                         expires_days: int = DEFAULT_TOKEN_DAYS) -> str:
        """A new token for ``username``; the token itself is returned once and stored hashed."""
        if scope not in TOKEN_SCOPES:
            raise AccountError(f"token scope {scope!r}: expected one of {', '.join(TOKEN_SCOPES)}")
        if not 1 <= expires_days <= MAX_TOKEN_DAYS:
            raise AccountError(f"token expiry {expires_days} days: give 1–{MAX_TOKEN_DAYS} days")
        name = name.strip()
        if not name:
            raise AccountError("token name must not be empty")
        user = self._user(username)
        token = "vms_" + new_token()
        now = self.clock.now_us()
        m.ApiToken.create(user=user, name=name[:100], token_hash=token_digest(token),
                          created_us=now, expires_us=now + expires_days * DAY_US, scope=scope)
        return token

    def list_api_tokens(self, username: str | None = None) -> list[dict[str, object]]:
        """Tokens of one user (every user's with None), newest first; never the token itself."""
        query = (m.ApiToken.select(m.ApiToken, m.User).join(m.User)
                 .order_by(m.ApiToken.created_us.desc(), m.ApiToken.id.desc()))
        if username is not None:
            query = query.where(m.ApiToken.user == self._user(username))
        now = self.clock.now_us()
        return [self._token_dict(t, now) for t in query]

    @staticmethod
    def _token_dict(t: m.ApiToken, now: int) -> dict[str, object]:
        if t.revoked or t.created_us < t.user.password_changed_us:
            state = "revoked"
        elif t.expires_us <= now:
            state = "expired"
        else:
            state = "active"
        return {"id": t.id, "username": t.user.username, "name": t.name, "scope": t.scope,
                "created_us": t.created_us, "expires_us": t.expires_us,
                "last_used_us": t.last_used_us, "state": state}

    def revoke_api_token(self, token_id: int, *, owner: str | None = None) -> dict[str, object]:
        """Revoke a token; with ``owner`` only one of that user's (another's is "not found")."""
        query = m.ApiToken.select(m.ApiToken, m.User).join(m.User).where(m.ApiToken.id == token_id)
        if owner is not None:
            query = query.where(m.User.username == owner)
        row = query.first()
        if row is None:
            raise AccountError(f"no API token {token_id}")
        m.ApiToken.update(revoked=True).where(m.ApiToken.id == row.id).execute()
        row.revoked = True
        return self._token_dict(row, self.clock.now_us())

    def token_principal(self, token: str) -> Principal | None:
        """The caller a bearer token stands for; None when unknown, revoked, expired, older than
        its user's last password change, or its user is disabled."""
        row = (m.ApiToken.select(m.ApiToken, m.User).join(m.User)
               .where((m.ApiToken.token_hash == token_digest(token)) & (~m.ApiToken.revoked))
               .first())
        now = self.clock.now_us()
        if row is None or row.user.disabled or row.expires_us <= now:
            return None
        if row.created_us < row.user.password_changed_us:
            return None
        if row.last_used_us is None or now - row.last_used_us >= TOKEN_USE_RESOLUTION_US:
            m.ApiToken.update(last_used_us=now).where(m.ApiToken.id == row.id).execute()
        principal = self.principal_for(row.user, via="token")
        return dataclasses.replace(principal, token_scope=row.scope, token_id=row.id)


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected, given)

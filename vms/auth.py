"""Authentication and authorisation core: roles, rights, password hashes, sessions, API tokens.

Roles map to rights (:data:`ROLE_RIGHTS`); a :class:`Principal` is who is asking, with the sites
they may see. The web layer turns a cookie or a bearer token into a Principal through
:class:`Accounts` and checks rights and sites in one middleware. Passwords are argon2id hashes;
session and API tokens are random and stored only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vms.clock import US_PER_S, Clock
from vms.db import models as m

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
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class AuthError(Exception):
    """Login refused; the message is safe to show (it never says which part was wrong)."""


class AccountError(ValueError):
    """A user or site request that cannot be carried out, worded for the person who asked."""


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

    def can(self, right: str) -> bool:
        return right in self.rights

    def sees_site(self, site_id: int) -> bool:
        return self.site_ids is None or site_id in self.site_ids


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def random_password() -> str:
    return secrets.token_urlsafe(12)


# A hash to verify against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Accounts:
    """Users, sites, grants, sessions and API tokens. Sync methods: run them through the gateway
    (``await gateway.write(accounts.create_user, ...)``) so writes stay on the writer thread."""

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
    def create_user(self, username: str, password: str, role: str,
                    site_names: list[str] | tuple[str, ...] = ()) -> m.User:
        if not USERNAME_RE.fullmatch(username):  # match() let "name\n" through ($ before \n)
            raise AccountError(
                f"username {username!r}: use 1–64 letters, digits, '_', '.', '@' or '-'")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        check_password_strength(password)
        if m.User.select().where(m.User.username == username).exists():
            raise AccountError(f"user {username!r} already exists")
        now = self.clock.now_us()
        user = m.User.create(username=username, password_hash=hash_password(password), role=role,
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

    def set_password(self, username: str, password: str) -> None:
        """Change a password; every session of that user ends."""
        check_password_strength(password)
        user = self._user(username)
        user.password_hash = hash_password(password)
        user.password_changed_us = self.clock.now_us()
        user.save()
        m.Session.delete().where(m.Session.user == user).execute()

    def set_role(self, username: str, role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        user = self._user(username)
        user.role = role
        user.save()

    def update_user(self, username: str, *, role: str | None = None,
                    sites: list[str] | None = None, disabled: bool | None = None,
                    password: str | None = None) -> dict[str, object]:
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
            self.set_password(username, password)
            changes["password"] = "changed"  # noqa: S105 - a change marker, not a secret
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
    def authenticate(self, username: str, password: str) -> m.User:
        user = m.User.get_or_none(m.User.username == username)
        if user is None or user.disabled:
            verify_password(_DUMMY_HASH, password)
            raise AuthError("wrong username or password")
        if not verify_password(user.password_hash, password):
            raise AuthError("wrong username or password")
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
    def create_api_token(self, username: str, name: str) -> str:
        user = self._user(username)
        token = "vms_" + new_token()
        m.ApiToken.create(user=user, name=name[:100], token_hash=token_digest(token),
                          created_us=self.clock.now_us())
        return token

    def token_principal(self, token: str) -> Principal | None:
        row = (m.ApiToken.select(m.ApiToken, m.User).join(m.User)
               .where((m.ApiToken.token_hash == token_digest(token)) & (~m.ApiToken.revoked))
               .first())
        if row is None or row.user.disabled:
            return None
        m.ApiToken.update(last_used_us=self.clock.now_us()).where(m.ApiToken.id == row.id).execute()
        return self.principal_for(row.user, via="token")


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected, given)


class LoginThrottle:
    """Refuse logins after repeated failures, per account and per address (in memory).

    ``max_failures`` within ``window_s`` locks the key for ``lock_s``.
    """

    def __init__(self, clock: Clock, max_failures: int = 5, window_s: int = 300,
                 lock_s: int = 300) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window_us = window_s * US_PER_S
        self.lock_us = lock_s * US_PER_S
        self._failures: dict[str, list[int]] = {}
        self._locked_until: dict[str, int] = {}

    def retry_after_s(self, *keys: str) -> int:
        now = self.clock.monotonic_us()
        wait = max((self._locked_until.get(k, 0) - now for k in keys), default=0)
        return max(0, -(-wait // US_PER_S))

    def failed(self, *keys: str) -> None:
        now = self.clock.monotonic_us()
        for key in keys:
            recent = [t for t in self._failures.get(key, []) if now - t < self.window_us]
            recent.append(now)
            self._failures[key] = recent[-self.max_failures * 2:]
            if len(recent) >= self.max_failures:
                self._locked_until[key] = now + self.lock_us
        if len(self._failures) > 10_000:
            self._failures.clear()

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

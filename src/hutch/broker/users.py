"""Users, their passwords and tags, and per-vhost permissions.

Passwords are hashed the way RabbitMQ hashes them, so exported definitions
import into RabbitMQ unchanged (and RabbitMQ's exports import into Hutch):
``rabbit_password_hashing_sha256`` is a random 4-byte salt, then
``base64(salt + sha256(salt + utf8(password)))``; the sha512 and (legacy) md5
variants differ only in the digest.

Every mutation bumps ``generation`` so connections can cache compiled
permission checks and notice at once when an operator changes them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
_DIGESTS = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}


def hash_password(password: str, salt: bytes | None = None,
                  algorithm: str = HASHING_ALGORITHM) -> str:
    salt = os.urandom(4) if salt is None else salt
    digest = _DIGESTS[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def check_password(password: str, password_hash: str, algorithm: str = HASHING_ALGORITHM) -> bool:
    """An empty hash never matches: RabbitMQ's way of a user without a password."""
    digest = _DIGESTS.get(algorithm)
    if digest is None or not password_hash:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    size = digest().digest_size
    if len(raw) != 4 + size:
        return False
    salt, expected = raw[:4], raw[4:]
    return hmac.compare_digest(digest(salt + password.encode("utf-8")).digest(), expected)


def valid_password_hash(password_hash: str, algorithm: str) -> bool:
    if algorithm not in _DIGESTS:
        return False
    if password_hash == "":
        return True
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    return len(raw) == 4 + _DIGESTS[algorithm]().digest_size


@dataclass(slots=True)
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    hashing_algorithm: str = HASHING_ALGORITHM
    # max-connections / max-channels (limits.py); empty: none.
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Permission:
    """RabbitMQ's per-vhost permission triple: regexes over resource names."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"


def parse_tags(tags: str | list[str] | None) -> list[str]:
    """Tags arrive as RabbitMQ accepts them: a list, or one comma-separated string."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [t.strip() for t in tags if t and t.strip()]


class Users:
    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        # Users that may only log in from a loopback address (RabbitMQ's loopback_users).
        self.loopback_only: set[str] = {"guest"}
        # (vhost, user) -> permissions; no entry means no access to that vhost.
        self.permissions: dict[tuple[str, str], Permission] = {}
        # Bumped on every change that can alter an access decision.
        self.generation = 0

    def add(self, name: str, password: str, tags: list[str] | None = None) -> User:
        user = User(name, hash_password(password), list(tags or []))
        self.users[name] = user
        self.generation += 1
        return user

    def put(self, name: str, password_hash: str, tags: list[str],
            algorithm: str = HASHING_ALGORITHM) -> User:
        """Create or replace a user from a stored hash (definitions import, HTTP PUT).
        A replaced user keeps its limits, as in RabbitMQ (a PUT does not carry them)."""
        old = self.users.get(name)
        user = User(name, password_hash, list(tags), algorithm, dict(old.limits) if old else {})
        self.users[name] = user
        self.generation += 1
        return user

    def delete(self, name: str) -> bool:
        if self.users.pop(name, None) is None:
            return False
        for key in [k for k in self.permissions if k[1] == name]:
            del self.permissions[key]
        self.generation += 1
        return True

    def set_permission(self, vhost: str, user: str, perm: Permission) -> None:
        self.permissions[(vhost, user)] = perm
        self.generation += 1

    def clear_permission(self, vhost: str, user: str) -> bool:
        if self.permissions.pop((vhost, user), None) is None:
            return False
        self.generation += 1
        return True

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.users.get(name)
        if user is None or not check_password(password, user.password_hash, user.hashing_algorithm):
            return None
        return user

"""Users and their passwords, hashed the way RabbitMQ hashes them.

``rabbit_password_hashing_sha256``: a random 4-byte salt, then
``base64(salt + sha256(salt + utf8(password)))``.  Using RabbitMQ's scheme
means exported definitions import into RabbitMQ unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        raw = base64.b64decode(password_hash)
    except ValueError:
        return False
    if len(raw) != 36:
        return False
    salt, expected = raw[:4], raw[4:]
    return hmac.compare_digest(hashlib.sha256(salt + password.encode("utf-8")).digest(), expected)


@dataclass(slots=True)
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    hashing_algorithm: str = HASHING_ALGORITHM


@dataclass(slots=True)
class Permission:
    """RabbitMQ's per-vhost permission triple: regexes over resource names."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"


class Users:
    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        # Users that may only log in from a loopback address (RabbitMQ's loopback_users).
        self.loopback_only: set[str] = {"guest"}
        # (vhost, user) -> permissions; no entry means no access to that vhost.
        self.permissions: dict[tuple[str, str], Permission] = {}

    def add(self, name: str, password: str, tags: list[str] | None = None) -> User:
        user = User(name, hash_password(password), list(tags or []))
        self.users[name] = user
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.users.get(name)
        if user is None or not check_password(password, user.password_hash):
            return None
        return user

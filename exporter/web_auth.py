"""HTTP basic auth for the exporter's pages: bcrypt hashes (as the Prometheus exporter-toolkit's
web-config `basic_auth_users` takes them) or the sha256 hex digest of the password (either case).

A bcrypt check costs tens of milliseconds of CPU by design: successful checks are remembered (a
scraper sends the same credentials every time), and at most BCRYPT_AT_ONCE run at once, so wrong
passwords cannot turn the server into a bcrypt furnace at the expense of /metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Mapping

import bcrypt

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_BCRYPT = re.compile(r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}")
BCRYPT_AT_ONCE = 2
_REMEMBERED = 64  # successful (user, password) checks kept

#: A hash for unknown users, so their check costs what a known user's does.
_DUMMY_SHA256 = b"0" * 64


def is_password_hash(text: str) -> bool:
    """True for a bcrypt hash ($2a$/$2b$/$2y$) or a sha256 hex digest (upper or lower case)."""
    return bool(_SHA256_HEX.fullmatch(text.strip()) or _BCRYPT.fullmatch(text.strip()))


class BasicAuth:
    """user -> password hash; `check(user, password)` in constant time for sha256 digests."""

    def __init__(self, users: Mapping[str, str] | None) -> None:
        self._sha256: dict[str, bytes] = {}
        self._bcrypt: dict[str, bytes] = {}
        for name, value in (users or {}).items():
            text = value.strip()
            if _SHA256_HEX.fullmatch(text):
                self._sha256[name] = text.lower().encode("ascii")
            elif _BCRYPT.fullmatch(text):
                self._bcrypt[name] = text.encode("ascii")
            else:
                raise ValueError(
                    f"basic_auth_users[{name!r}]: expected a bcrypt hash or the sha256 hex digest of the password"
                )
        self._lock = threading.Lock()
        self._good: dict[bytes, None] = {}  # insertion-ordered: the oldest goes first
        self._slots = threading.BoundedSemaphore(BCRYPT_AT_ONCE)

    def __bool__(self) -> bool:
        return bool(self._sha256 or self._bcrypt)

    def check(self, user: str, password: str) -> bool:
        secret = password.encode("utf-8")
        hashed = self._bcrypt.get(user)
        if hashed is None:
            given = hashlib.sha256(secret).hexdigest().encode("ascii")
            # unknown users compare against a dummy too: timing does not tell which users exist
            return hmac.compare_digest(given, self._sha256.get(user, _DUMMY_SHA256)) and user in self._sha256
        key = hashlib.sha256(b"\0".join((user.encode("utf-8"), secret, hashed))).digest()
        with self._lock:
            if key in self._good:
                return True
        with self._slots:
            try:
                ok = bcrypt.checkpw(secret, hashed)
            except ValueError:  # a password over bcrypt's 72 bytes, or a malformed hash
                ok = False
        if ok:
            with self._lock:
                self._good[key] = None
                while len(self._good) > _REMEMBERED:
                    del self._good[next(iter(self._good))]
        return ok

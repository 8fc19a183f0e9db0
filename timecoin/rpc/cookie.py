"""The RPC cookie and hashed credentials (``rpcauth``), with the standard library only: the
server, ``timecoin-cli`` and scripts read them without importing the server (DESIGN §10;
docs/operator.md, "Authentication").

* The cookie ``<datadir>/.cookie`` is ``__cookie__:<64 hex>``, mode 0600, random per start.
* An ``rpcauth`` entry is ``USER:SALT$HASH`` with ``HASH = HMAC-SHA256(key=SALT, msg=PASSWORD)``
  in hex, the format of Bitcoin Core's ``share/rpcauth/rpcauth.py``: the node stores no password,
  and one entry per user may be given many times. :func:`rpcauth_line` makes one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

COOKIE_FILE = ".cookie"
COOKIE_USER = "__cookie__"
RPCAUTH_SALT_BYTES = 16
"""Random salt of a generated ``rpcauth`` entry, bytes (Core's rpcauth.py: 16)."""
RPCAUTH_PASSWORD_BYTES = 32
"""Random bytes of a generated password (Core's rpcauth.py: 32, URL-safe base64)."""
_HASH_HEX_LEN = 2 * hashlib.sha256().digest_size


def write_cookie(path: Path) -> str:
    """Writes a fresh random cookie (``__cookie__:<64 hex>``) atomically, mode 0600, and returns
    the password part."""
    password = secrets.token_hex(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{COOKIE_USER}:{password}")
    tmp.replace(path)
    return password


def read_cookie(path: Path) -> tuple[str, str]:
    """(user, password) from a cookie file; ``OSError`` if unreadable, ``ValueError`` if malformed."""
    user, sep, password = path.read_text().strip().partition(":")
    if not sep or not password:
        raise ValueError(f"{path} is not a cookie file")
    return user, password


@dataclass(frozen=True, slots=True)
class RPCAuth:
    """One ``rpcauth`` entry: a user and the salted HMAC-SHA256 of its password."""

    user: str
    salt: str
    hash: bytes

    @classmethod
    def parse(cls, text: str) -> RPCAuth:
        """``USER:SALT$HASH`` → an entry; ``ValueError`` saying what is wrong (no user, no
        ``$``, a hash that is not 64 hex digits)."""
        user, sep, rest = text.strip().partition(":")
        if not sep or not user:
            raise ValueError(f"must be USER:SALT$HASH, got {text!r}")
        salt, sep, digest = rest.partition("$")
        if not sep or not salt:
            raise ValueError(f"must be USER:SALT$HASH (salt, then $, then the hash), got {text!r}")
        if len(digest) != _HASH_HEX_LEN:
            raise ValueError(f"the hash of {user!r} must be {_HASH_HEX_LEN} hex digits, got {len(digest)}")
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raise ValueError(f"the hash of {user!r} must be hex digits") from None
        return cls(user, salt, raw)

    def matches(self, user: str, password: str) -> bool:
        """Whether ``user``/``password`` are this entry's (constant-time in the hash)."""
        ok = hmac.compare_digest(password_hmac(self.salt, password), self.hash)
        return ok and hmac.compare_digest(user.encode(), self.user.encode())

    def __str__(self) -> str:
        return f"{self.user}:{self.salt}${self.hash.hex()}"


def password_hmac(salt: str, password: str) -> bytes:
    """HMAC-SHA256 with the salt (as text) for key and the password for message (Core's
    rpcauth.py ``password_to_hmac``)."""
    return hmac.new(salt.encode(), password.encode(), hashlib.sha256).digest()


def rpcauth_line(user: str, password: str | None = None) -> tuple[str, str]:
    """(the ``rpcauth`` value ``USER:SALT$HASH``, the password): a random salt, and a random
    URL-safe password unless one is given. ``ValueError`` for a user with ``:`` or nothing."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise ValueError(f"user must be a non-empty name without ':' or spaces, got {user!r}")
    if password is None:
        password = secrets.token_urlsafe(RPCAUTH_PASSWORD_BYTES)
    salt = secrets.token_hex(RPCAUTH_SALT_BYTES)
    return str(RPCAuth(user, salt, password_hmac(salt, password))), password

"""StreamOne's session login proof, as the official PHP SDK v3 computes it, pure.

``upstreams.md`` § streamone, Sessions; the SDK's ``Password`` class
(``generatePasswordResponse`` and ``generateV2PasswordHash``):

- :func:`password_hash`  ``H = crypt(md5_hex(password), salt)``, ``salt`` being
  the bcrypt salt ``session/initialize`` returned (``$2y$04$`` + 22 characters),
  so ``H`` is 60 ASCII bytes;
- :func:`proof_from_hash` ``base64(sha256_hex(sha256_hex(H) + challenge) XOR H)``,
  XOR byte-wise over the two ASCII strings, as long as the shorter one (60);
- :func:`session_response` both steps from the password;
- :func:`v2_hash`         ``md5_hex(password)``, sent as ``v2hash`` when
  ``session/initialize`` says ``needsv2hash: true``.

PHP's ``crypt`` is bcrypt for these salts; the ``bcrypt`` library computes it.
``$2a$``, ``$2b$`` and ``$2y$`` differ only for inputs the md5 hex digest never
is (non-ASCII or over 255 bytes), so each is computed as ``$2b$`` and given back
with its own prefix, as PHP does. Any other salt (another crypt scheme, a
malformed one, or a cost over :data:`MAX_COST`, which would stall the gateway)
is :class:`UnsupportedSalt`, with a message that names no secret.
"""

from __future__ import annotations

import base64
import hashlib
import re

import bcrypt

# $2y$ + two-digit cost + $ + 22 characters of bcrypt's base64 alphabet.
_BCRYPT_SALT = re.compile(r"\$(2[aby])\$(\d\d)\$[./A-Za-z0-9]{22}")
_BCRYPT_BASE64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MIN_COST = 4
MAX_COST = 16  # 2^16 rounds is ~5 s already; a higher cost is refused, not computed


class UnsupportedSalt(ValueError):
    """The salt is not a bcrypt salt the gateway will compute."""


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def v2_hash(password: str) -> str:
    """The API v2 password hash: ``md5_hex(password)``."""
    return md5_hex(password)


def password_hash(password: str, salt: str) -> str:
    """``crypt(md5_hex(password), salt)`` for a bcrypt ``salt`` (29 characters)."""
    match = _BCRYPT_SALT.fullmatch(salt)
    if match is None:
        scheme = salt[:4] if salt.startswith("$") else "a non-bcrypt salt"
        raise UnsupportedSalt(f"unsupported password salt scheme ({scheme!r}; bcrypt expected)")
    cost = int(match[2])
    if not MIN_COST <= cost <= MAX_COST:
        raise UnsupportedSalt(f"bcrypt cost {cost} is outside {MIN_COST}..{MAX_COST}")
    # The 22nd salt character holds 2 bits; PHP (crypt_blowfish) ignores the other
    # 4 and writes the character back without them. The bcrypt package refuses it.
    last = _BCRYPT_BASE64[_BCRYPT_BASE64.index(salt[28]) & 0b110000]
    bsalt = f"$2b{salt[3:28]}{last}".encode("ascii")
    hashed = bcrypt.hashpw(md5_hex(password).encode("ascii"), bsalt).decode("ascii")
    return salt[:3] + hashed[3:]


def proof_from_hash(hashed: str, challenge: str) -> str:
    """``base64(sha256_hex(sha256_hex(H) + challenge) XOR H)``."""
    digest = sha256_hex(sha256_hex(hashed) + challenge).encode("ascii")
    mixed = bytes(a ^ b for a, b in zip(digest, hashed.encode("ascii"), strict=False))
    return base64.b64encode(mixed).decode("ascii")


def session_response(password: str, salt: str, challenge: str) -> str:
    """The ``response`` argument of ``session/create``."""
    return proof_from_hash(password_hash(password, salt), challenge)

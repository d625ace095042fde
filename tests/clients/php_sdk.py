"""The official StreamOne PHP SDK v3's algorithms, re-written for the tests.

Written from the SDK's source (``Password::generatePasswordResponse``,
``RequestBase::signature``/``sendRequest``, ``Session::start``) and PHP's
documented functions, sharing no code with the gateway or the stand-in:

- ``crypt`` is the C library's (libxcrypt implements PHP's ``$2y$`` bcrypt), not
  the ``bcrypt`` package the gateway and the stand-in use;
- ``http_build_query`` is PHP's ``urlencode`` spelled out byte by byte;
- parameters are added in the SDK's own order (``api``, ``format``,
  ``authentication_type``, the caller's, ``timestamp``, the actor, ``session``),
  not sorted: the server checks the bytes it gets.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import hashlib
import hmac

# The C library's crypt(3) (libxcrypt), through ctypes: the stdlib ``crypt``
# module wraps the same function but is deprecated and gone in Python 3.13.
_LIBCRYPT = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
_LIBCRYPT.crypt.restype = ctypes.c_char_p
_LIBCRYPT.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)

UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


def php_crypt(text: str, salt: str) -> str:
    hashed = _LIBCRYPT.crypt(text.encode(), salt.encode())
    assert hashed and hashed.startswith(salt[:7].encode()), "libc crypt lacks bcrypt"
    return str(hashed.decode())


def generate_password_response(password: str, salt: str, challenge: str) -> str:
    """``Password::generatePasswordResponse``."""
    password_hash = php_crypt(hashlib.md5(password.encode()).hexdigest(), salt)
    sha_password_hash = hashlib.sha256(password_hash.encode()).hexdigest()
    with_challenge = hashlib.sha256((sha_password_hash + challenge).encode()).hexdigest()
    # PHP's string ^ string: byte-wise, as long as the shorter operand
    xored = bytes(ord(a) ^ ord(b) for a, b in zip(with_challenge, password_hash, strict=False))
    return base64.b64encode(xored).decode()


def urlencode(text: str) -> str:
    """PHP's ``urlencode``."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in UNRESERVED:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def http_build_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{urlencode(k)}={urlencode(v)}" for k, v in pairs)


def signed_call(
    path: str,
    actor: tuple[str, str, str],
    arguments: list[tuple[str, str]],
    timestamp: int,
    session: tuple[str, str] | None = None,
) -> tuple[str, bytes]:
    """``(query, body)`` as ``RequestBase::execute`` sends them."""
    auth_type, actor_id, psk = actor
    params = [("api", "3"), ("format", "json"), ("authentication_type", auth_type),
              ("timestamp", str(timestamp)), (auth_type, actor_id)]  # fmt: skip
    key = psk
    if session is not None:
        params.append(("session", session[0]))
        key = psk + session[1]
    query = http_build_query(params)
    body = http_build_query(arguments)
    to_sign = f"{path}?{query}&{body}"
    signature = hmac.new(key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()
    return f"{query}&signature={signature}", body.encode()

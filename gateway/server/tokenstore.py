"""The token store: per-user upstream credentials, encrypted at rest (Fernet).

Values go into the shared key-value store (Redis when ``REDIS_URL`` is set,
memory otherwise) as Fernet tokens (AES-128-CBC + HMAC-SHA256, from
``cryptography``). The key comes from the config's ``token_store_key``:

- any string; the Fernet key is derived from it with SHA-256, so a passphrase
  or a ``Fernet.generate_key()`` value both work;
- several keys separated by commas rotate: the first encrypts, all decrypt;
- unset: a random per-process key, and a warning that stored tokens do not
  survive a restart (nor are readable by another replica).

A value that no configured key can decrypt reads as absent (and is logged
without its content). Redis failures become ``upstream_unavailable`` naming the
token store, never a silent fallback to shared credentials.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.config_reader import Secret
from gateway.logs import get_logger
from gateway.upstreams.base import KeyValueStore

log = get_logger("gateway.tokenstore")


def derive_key(secret: str) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) from any configured string."""
    digest = hashlib.sha256(b"gateway-token-store\x00" + secret.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest)


def fernet_from(secret: Secret | None) -> tuple[MultiFernet, bool]:
    """The cipher, and whether its key was generated for this process only."""
    if secret is None or not secret.reveal().strip():
        return MultiFernet([Fernet(Fernet.generate_key())]), True
    keys = [k.strip() for k in secret.reveal().split(",") if k.strip()]
    return MultiFernet([Fernet(derive_key(k)) for k in keys]), False


class EncryptedStore:
    """A :class:`KeyValueStore` whose values are encrypted before they are stored."""

    def __init__(self, inner: KeyValueStore, cipher: MultiFernet) -> None:
        self._inner = inner
        self._cipher = cipher

    async def get(self, key: str) -> bytes | None:
        # Redis errors: translated in stores.RedisStore
        return self._decrypted(key, await self._inner.get(key))

    async def take(self, key: str) -> bytes | None:
        return self._decrypted(key, await self._inner.take(key))

    def _decrypted(self, key: str, raw: bytes | None) -> bytes | None:
        if not raw:
            return None
        try:
            return self._cipher.decrypt(raw)
        except InvalidToken:
            log.warning("token_store_undecryptable", key_kind=key.rsplit(":", 2)[0])
            return None

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._inner.set(key, self._cipher.encrypt(value), ttl)


def create_token_store(inner: KeyValueStore, secret: Secret | None) -> EncryptedStore:
    cipher, generated = fernet_from(secret)
    if generated:
        log.warning(
            "token_store_key_generated",
            detail="token_store_key is unset: stored user tokens are encrypted with a "
            "per-process key and will not survive a restart or be readable by other replicas",
        )
    return EncryptedStore(inner, cipher)

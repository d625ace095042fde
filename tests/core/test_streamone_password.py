"""StreamOne's session proof: the official SDK's vector, and vectors computed in
the test from the formula with the C library's crypt (not the bcrypt package)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.core.streamone_password import (
    UnsupportedSalt,
    password_hash,
    proof_from_hash,
    session_response,
    v2_hash,
)
from tests.clients.php_sdk import generate_password_response, php_crypt

# Computed by the official PHP SDK v3's own code (PHP 8.2), upstreams.md.
SDK_VECTOR = (
    "pw-alice",
    "$2y$04$KUPxtN.Lr5dN.6hiiLssre",
    "chal-123",
    "RwoaQlYNQX9saR0QL00uFANXdh9VWlALLkVCQ1xiJ14BFwZoeREvCnQ0LwZUT3QaDWIHTQEpdgdRMGRT",
)


def test_the_official_sdk_vector() -> None:
    password, salt, challenge, expected = SDK_VECTOR
    assert session_response(password, salt, challenge) == expected
    hashed = password_hash(password, salt)
    assert hashed == "$2y$04$KUPxtN.Lr5dN.6hiiLssreWFi3s0PKrLkFPJ77.M/9Ua.3OE5gURa"
    assert len(hashed) == 60 and len(base64.b64decode(expected)) == 60


def formula(password: str, salt: str, challenge: str) -> str:
    """upstreams.md, step by step: H = crypt(md5_hex(pw), salt) (libc crypt);
    base64(sha256_hex(sha256_hex(H) + challenge) XOR H), as long as the shorter."""
    h = php_crypt(hashlib.md5(password.encode()).hexdigest(), salt).encode()
    digest = (
        hashlib.sha256(hashlib.sha256(h).hexdigest().encode() + challenge.encode())
        .hexdigest()
        .encode()
    )
    return base64.b64encode(bytes(d ^ c for d, c in zip(digest, h, strict=False))).decode()


@pytest.mark.parametrize(
    ("password", "salt", "challenge"),
    [
        ("pw-alice", SDK_VECTOR[1], SDK_VECTOR[2]),
        ("correct horse ~ battery", "$2y$05$abcdefghijklmnopqrstuu", "c0ffee" * 5),
        ("wachtwoord-ü€", "$2b$04$0123456789ABCDEFGHIJKu", ""),
        ("", "$2a$04$//////////////////////", "x"),
    ],
)
def test_vectors_computed_from_the_formula(password: str, salt: str, challenge: str) -> None:
    assert session_response(password, salt, challenge) == formula(password, salt, challenge)
    # and the SDK re-written in tests/clients agrees
    assert generate_password_response(password, salt, challenge) == formula(
        password, salt, challenge
    )


def test_the_response_is_cut_to_the_60_bytes_of_h() -> None:
    hashed = password_hash("pw", "$2y$04$KUPxtN.Lr5dN.6hiiLssre")
    raw = base64.b64decode(proof_from_hash(hashed, "challenge"))
    assert len(raw) == 60  # sha256 hex is 64, H is 60
    digest = hashlib.sha256(
        (hashlib.sha256(hashed.encode()).hexdigest() + "challenge").encode()
    ).hexdigest()
    assert bytes(r ^ h for r, h in zip(raw, hashed.encode(), strict=True)) == digest[:60].encode()


def test_v2_hash_is_md5_hex() -> None:
    assert v2_hash("pw-alice") == hashlib.md5(b"pw-alice").hexdigest()


@pytest.mark.parametrize(
    "salt",
    [
        "$6$rounds=5000$saltsalt$",  # SHA-512 crypt
        "$1$saltsalt$",  # MD5 crypt
        "ab",  # DES
        "$2y$04$short",
        "$2x$04$KUPxtN.Lr5dN.6hiiLssre",
        "$2y$04$KUPxtN.Lr5dN.6hiiLssre-",  # not the bcrypt alphabet / too long
        "$2y$03$KUPxtN.Lr5dN.6hiiLssre",  # below bcrypt's minimum cost
        "$2y$31$KUPxtN.Lr5dN.6hiiLssre",  # would stall the gateway for days
        "",
    ],
)
def test_salts_of_other_schemes_are_refused(salt: str) -> None:
    with pytest.raises(UnsupportedSalt) as caught:
        session_response("secret-pw", salt, "c")
    assert "secret-pw" not in str(caught.value)

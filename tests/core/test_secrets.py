from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.core import secrets


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    known = secrets.snapshot()
    secrets.restore(())
    yield
    secrets.restore(known)


def test_known_values_are_masked_longest_first() -> None:
    secrets.remember_secrets(["abcd", "abcdefgh", "x"])  # "x" is too short to mask
    assert secrets.mask_known("k=abcdefgh; j=abcd; x") == "k=[redacted]; j=[redacted]; x"


def test_a_value_added_later_is_masked_too() -> None:
    secrets.remember_secret("first-secret")
    assert secrets.mask_known("first-secret") == "[redacted]"
    secrets.remember_secret("second-secret")
    assert secrets.mask_known("second-secret first-secret") == "[redacted] [redacted]"


def test_regex_characters_in_a_secret_are_literal() -> None:
    secrets.remember_secret("a.b*c")
    assert secrets.mask_known("aXbbbc a.b*c") == "aXbbbc [redacted]"


def test_the_registry_is_bounded_oldest_first() -> None:
    for i in range(secrets.MAX_KNOWN + 5):
        secrets.remember_secret(f"value-{i:06d}")
    assert len(secrets.snapshot()) == secrets.MAX_KNOWN
    assert secrets.mask_known("value-000000") == "value-000000"
    assert secrets.mask_known(f"value-{secrets.MAX_KNOWN + 4:06d}") == "[redacted]"

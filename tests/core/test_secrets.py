from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.core import secrets


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    known = secrets.snapshot()
    secrets.restore()
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


def test_configured_secrets_survive_any_number_of_run_time_ones() -> None:
    """Rotating Beeswax cookies registered ~1,024 values in minutes: the configured
    secrets, oldest in the registry, were the first forgotten."""
    secrets.remember_configured(["configured-password", "pin1"])
    for i in range(secrets.MAX_RUNTIME * 2 + 5):
        secrets.remember_secret(f"rotated-cookie-{i:06d}")
    assert secrets.mask_known("pw=configured-password pin1") == "pw=[redacted] [redacted]"
    known = secrets.snapshot()
    assert len(known.runtime) == secrets.MAX_RUNTIME  # run-time values stay bounded
    assert known.configured == ("configured-password", "pin1")
    assert secrets.mask_known("rotated-cookie-000000") == "rotated-cookie-000000"  # forgotten
    newest = f"rotated-cookie-{secrets.MAX_RUNTIME * 2 + 4:06d}"
    assert secrets.mask_known(newest) == "[redacted]"


def test_a_run_time_value_seen_again_is_kept_over_older_ones() -> None:
    index = secrets.SecretIndex(max_runtime=3)
    for value in ("user-token-alice", "user-token-bob", "user-token-carol"):
        index.add_runtime(value)
    index.add_runtime("user-token-alice")  # alice called again: her token is in use
    index.add_runtime("user-token-dave")
    assert index.mask("user-token-alice user-token-bob") == "[redacted] user-token-bob"


def test_a_run_time_value_that_is_configured_too_is_never_forgotten() -> None:
    index = secrets.SecretIndex(max_runtime=2)
    index.add_runtime("shared-secret-value")
    index.add_configured("shared-secret-value")
    for i in range(5):
        index.add_runtime(f"later-value-{i}")
    assert index.mask("x shared-secret-value") == "x [redacted]"
    assert len(index) == 3


@pytest.mark.parametrize("length", range(secrets.MIN_LENGTH, 40))
def test_every_occurrence_at_every_offset_is_masked(length: int) -> None:
    """The stride index probes every s-th position: an occurrence at any offset, of a
    value of any length, at the start, the end or glued to other characters, is found."""
    value = "".join(chr(ord("A") + (i * 7) % 26) for i in range(length))
    index = secrets.SecretIndex()
    index.add_runtime(value)
    for offset in range(20):
        text = "z" * offset + value + "yy" + value
        assert index.mask(text) == "z" * offset + "[redacted]yy[redacted]", (length, offset)
    assert index.mask(value[:-1]) == value[:-1]  # a prefix alone is not the secret


def test_overlapping_and_adjacent_occurrences() -> None:
    index = secrets.SecretIndex()
    index.add_runtime("abcabcabcabcabcabc")  # overlaps itself
    index.add_runtime("0123456789")
    text = "abcabcabcabcabcabcabc 01234567890123456789"
    assert index.mask(text) == "[redacted] [redacted][redacted]"
    index.add_runtime("x9012345678901234y")  # shares grams with nothing
    index.add_runtime("bcabcabcabcabcabca")  # shares grams with the first
    assert index.mask("abcabcabcabcabcabca") == "[redacted]"


def test_forgotten_values_leave_the_index_and_shared_grams_stay() -> None:
    index = secrets.SecretIndex(max_runtime=1)
    index.add_runtime("common-prefix-1111111")
    index.add_runtime("common-prefix-2222222")  # the first is forgotten, same grams
    assert index.mask("common-prefix-1111111") == "common-prefix-1111111"
    assert index.mask("common-prefix-2222222") == "[redacted]"


def test_cost_does_not_grow_with_the_number_of_secrets() -> None:
    """Each new secret recompiled one regex of every known value (~80 ms at 1,000
    values, +150 MB RSS): registering and masking must not depend on the count.
    Generous bounds (the old code took minutes here); bench/masking.py has figures."""
    line = '{"event": "request", "path": "/beeswax/rest/v2/campaigns", "status": 200} ' * 10
    started = time.perf_counter()
    for i in range(5_000):
        secrets.remember_secret(f"cookie-{i:08d}-{'k' * 24}")
        secrets.mask_known(line)  # the log line that follows each rotation
    assert time.perf_counter() - started < 5.0
    started = time.perf_counter()
    for _ in range(2_000):
        assert secrets.mask_known(line) == line
    assert time.perf_counter() - started < 2.0
    # Values of one format share grams (every JWT starts "eyJhbGciOi"): a text that
    # holds the shared part is confirmed once per (offset, length), not per value.
    jwt = "eyJhbGciOiJIUzI1NiJ9."
    for i in range(secrets.MAX_RUNTIME):
        secrets.remember_secret(f"{jwt}{i:040d}")
    started = time.perf_counter()
    for _ in range(1_000):
        assert secrets.mask_known(f"{jwt}x " * 20) == f"{jwt}x " * 20
    assert time.perf_counter() - started < 2.0
    assert secrets.mask_known(f"a {jwt}{7:040d} b") == "a [redacted] b"

from __future__ import annotations

import time

import pytest

from gateway.core import secrets


@pytest.fixture
def masker() -> secrets.SecretMasker:
    return secrets.SecretMasker()


def test_known_values_are_masked_longest_first(masker: secrets.SecretMasker) -> None:
    masker.remember_all(["abcd", "abcdefgh", "x"])  # "x" is too short to mask
    assert masker.mask("k=abcdefgh; j=abcd; x") == "k=[redacted]; j=[redacted]; x"


def test_a_value_added_later_is_masked_too(masker: secrets.SecretMasker) -> None:
    masker.remember("first-secret")
    assert masker.mask("first-secret") == "[redacted]"
    masker.remember("second-secret")
    assert masker.mask("second-secret first-secret") == "[redacted] [redacted]"


def test_regex_characters_in_a_secret_are_literal(masker: secrets.SecretMasker) -> None:
    masker.remember("a.b*c")
    assert masker.mask("aXbbbc a.b*c") == "aXbbbc [redacted]"


def test_configured_secrets_survive_any_number_of_run_time_ones(
    masker: secrets.SecretMasker,
) -> None:
    """Rotating Beeswax cookies registered ~1,024 values in minutes: the configured
    secrets, oldest in the registry, were the first forgotten."""
    masker.remember_configured(["configured-password", "pin1"])
    for i in range(secrets.MAX_RUNTIME * 2 + 5):
        masker.remember(f"rotated-cookie-{i:06d}")
    assert masker.mask("pw=configured-password pin1") == "pw=[redacted] [redacted]"
    assert masker.runtime == secrets.MAX_RUNTIME  # run-time values stay bounded
    assert masker.configured == 2
    assert masker.mask("rotated-cookie-000000") == "rotated-cookie-000000"  # forgotten
    newest = f"rotated-cookie-{secrets.MAX_RUNTIME * 2 + 4:06d}"
    assert masker.mask(newest) == "[redacted]"


def test_a_run_time_value_seen_again_is_kept_over_older_ones() -> None:
    index = secrets.SecretMasker(max_runtime=3)
    for value in ("user-token-alice", "user-token-bob", "user-token-carol"):
        index.remember(value)
    index.remember("user-token-alice")  # alice called again: her token is in use
    index.remember("user-token-dave")
    assert index.mask("user-token-alice user-token-bob") == "[redacted] user-token-bob"


def test_a_run_time_value_that_is_configured_too_is_never_forgotten() -> None:
    index = secrets.SecretMasker(max_runtime=2)
    index.remember("shared-secret-value")
    index.remember_configured(["shared-secret-value"])
    for i in range(5):
        index.remember(f"later-value-{i}")
    assert index.mask("x shared-secret-value") == "x [redacted]"
    assert (index.configured, index.runtime) == (1, 2)


@pytest.mark.parametrize("length", range(secrets.MIN_LENGTH, 40))
def test_every_occurrence_at_every_offset_is_masked(length: int) -> None:
    """The stride index probes every s-th position: an occurrence at any offset, of a
    value of any length, at the start, the end or glued to other characters, is found."""
    value = "".join(chr(ord("A") + (i * 7) % 26) for i in range(length))
    index = secrets.SecretMasker()
    index.remember(value)
    for offset in range(20):
        text = "z" * offset + value + "yy" + value
        assert index.mask(text) == "z" * offset + "[redacted]yy[redacted]", (length, offset)
    assert index.mask(value[:-1]) == value[:-1]  # a prefix alone is not the secret


def test_overlapping_and_adjacent_occurrences() -> None:
    index = secrets.SecretMasker()
    index.remember("abcabcabcabcabcabc")  # overlaps itself
    index.remember("0123456789")
    text = "abcabcabcabcabcabcabc 01234567890123456789"
    assert index.mask(text) == "[redacted] [redacted][redacted]"
    index.remember("x9012345678901234y")  # shares grams with nothing
    index.remember("bcabcabcabcabcabca")  # shares grams with the first
    assert index.mask("abcabcabcabcabcabca") == "[redacted]"


def test_forgotten_values_leave_the_index_and_shared_grams_stay() -> None:
    index = secrets.SecretMasker(max_runtime=1)
    index.remember("common-prefix-1111111")
    index.remember("common-prefix-2222222")  # the first is forgotten, same grams
    assert index.mask("common-prefix-1111111") == "common-prefix-1111111"
    assert index.mask("common-prefix-2222222") == "[redacted]"


def test_cost_does_not_grow_with_the_number_of_secrets(masker: secrets.SecretMasker) -> None:
    """Each new secret recompiled one regex of every known value (~80 ms at 1,000
    values, +150 MB RSS): registering and masking must not depend on the count.
    Generous bounds (the old code took minutes here); bench/masking.py has figures."""
    line = '{"event": "request", "path": "/beeswax/rest/v2/campaigns", "status": 200} ' * 10
    started = time.perf_counter()
    for i in range(5_000):
        masker.remember(f"cookie-{i:08d}-{'k' * 24}")
        masker.mask(line)  # the log line that follows each rotation
    assert time.perf_counter() - started < 5.0
    started = time.perf_counter()
    for _ in range(2_000):
        assert masker.mask(line) == line
    assert time.perf_counter() - started < 2.0
    # Values of one format share grams (every JWT starts "eyJhbGciOi"): a text that
    # holds the shared part is confirmed once per (offset, length), not per value.
    jwt = "eyJhbGciOiJIUzI1NiJ9."
    for i in range(secrets.MAX_RUNTIME):
        masker.remember(f"{jwt}{i:040d}")
    started = time.perf_counter()
    for _ in range(1_000):
        assert masker.mask(f"{jwt}x " * 20) == f"{jwt}x " * 20
    assert time.perf_counter() - started < 2.0
    assert masker.mask(f"a {jwt}{7:040d} b") == "a [redacted] b"


def test_a_text_with_no_known_value_is_returned_as_the_same_object(
    masker: secrets.SecretMasker,
) -> None:
    """Callers on the hot path test ``masked is text`` to skip re-encoding a field."""
    text = "GET /beeswax/rest/v2/campaigns?rows=1 alice " * 4
    assert masker.mask(text) is text  # nothing known yet
    masker.remember("known-cookie-value-1234")
    masker.remember_configured(["pin1"])
    assert masker.mask(text) is text  # probed, nothing found
    masked = masker.mask(text + "known-cookie-value-1234")
    assert masked is not text and masked.endswith(secrets.REDACTED)

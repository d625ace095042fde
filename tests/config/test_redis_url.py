"""``redis.url`` modes: single, cluster and sentinel, chosen by the scheme."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.redis_url import RedisTarget, parse_redis_url


def test_the_scheme_chooses_the_mode() -> None:
    assert parse_redis_url("redis://r:6379/0").mode == "single"
    assert parse_redis_url("unix:///run/redis.sock").mode == "single"
    assert parse_redis_url("redis+cluster://:pw@a:7000,b:7001") == RedisTarget(
        "cluster", False, (("a", 7000), ("b", 7001)), None, "pw"
    )
    assert parse_redis_url("rediss+sentinel://u:p%40ss@s1:26379,[::1]:26380/main/2") == (
        RedisTarget("sentinel", True, (("s1", 26379), ("::1", 26380)), "u", "p@ss", "main", 2)
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://r:6379",
        "redis://:secret-pw@r:abc",  # single mode too: refused by check-config, not at start
        "redis://:secret-pw@r:99999",
        "redis://:secret-pw@r:6379/zero",
        "unix:///run/redis.sock?db=secret-pw",
        "redis+cluster://a:7000/0",
        "redis+cluster://a",
        "redis+sentinel://s1:26379",
        "redis+sentinel://s1:26379/main/x",
        "redis+sentinel://:secret-pw@s1:26379/main?x=1",
    ],
)
def test_a_bad_url_names_the_key_and_never_repeats_it(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_redis_url(url)
    assert str(err.value).startswith("redis.url: ")
    assert "secret-pw" not in str(err.value) and url not in str(err.value)

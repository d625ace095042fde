"""Config loading: one YAML file per invalid case, each error names the bad key.

A file's leading ``# expect:`` lines are the problems the loader must report,
all of them in one run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config_reader import Secret
from gateway.devrun import STANDIN_CREDENTIALS
from gateway.errors import ConfigError

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
SHIPPED = ROOT / "config" / "gateway.yaml"


def shipped_env() -> dict[str, str]:
    env = dict(STANDIN_CREDENTIALS)
    for name in ("BIZZSTREAM", "BEESWAX", "BUZZSTREAM", "STREAMONE"):
        env[f"{name}_URL"] = "http://127.0.0.1:9"
    return env


def expected_messages(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    expected = [line.removeprefix("# expect: ") for line in lines if line.startswith("# expect: ")]
    assert expected and lines[0].startswith("# expect: "), path
    return expected


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_names_the_key(path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    expected = expected_messages(path)
    for message in expected:
        assert message in str(err.value)
    assert len(err.value.problems) == len(expected), err.value.problems


def test_every_problem_of_a_file_is_reported_in_one_run_in_file_order() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(HERE / "invalid" / "several_mistakes.yaml", env={})
    assert err.value.problems == (
        "upstreams.beeswax.auth.password: environment variable "
        "BEESWAX_PASSWORD_UNSET_IN_TESTS is not set",
        "redis.timeout: expected a duration such as 2s or 250ms",
        "upstreams.bizzstream.rate_limits[0].limit: required",
        "upstreams.bizzstream.pool_sise: unknown key",
        "upstreams.streamone.auth.actor_id: required",
    )


def test_a_yaml_syntax_error_names_the_line_of_the_broken_construct() -> None:
    # The `[` opened on line 4 is never closed; the parser notices on line 5.
    with pytest.raises(ConfigError) as err:
        load_config(HERE / "invalid" / "invalid_yaml.yaml", env={})
    assert "invalid YAML at line 4: while parsing a flow sequence" in str(err.value)
    assert "expected ',' or ']', but got ':' (line 5, column 9)" in str(err.value)


def test_duplicate_keys_name_both_lines_at_any_depth() -> None:
    for name, line, first in (("duplicate_key", 8, 5), ("duplicate_top_key", 6, 2)):
        with pytest.raises(ConfigError, match=f"line {line}: duplicate key .* line {first}"):
            load_config(HERE / "invalid" / f"{name}.yaml", env={})


def test_a_duplicate_key_in_a_flow_mapping_is_refused_too() -> None:
    from gateway.config_yaml import parse_yaml

    with pytest.raises(ConfigError, match=r"line 2: duplicate key 'url' \(first given at column 9"):
        parse_yaml("listen: 127.0.0.1:1\nredis: {url: 'redis://a', url: 'redis://b'}\n", "f.yaml")


def test_a_key_that_is_not_a_string_is_an_unknown_key_not_a_crash(tmp_path: Path) -> None:
    file = tmp_path / "numbers.yaml"
    file.write_text("1: a\n'1': b\nlisten: 127.0.0.1:1\n")
    with pytest.raises(ConfigError) as err:
        load_config(file, env={})
    assert "1: unknown key" in str(err.value)


def test_yaml_merge_keys_may_still_override() -> None:
    text = (
        "defaults: &d {base_url: 'http://127.0.0.1:1', pool_size: 5}\n"
        "upstreams:\n  bizzstream:\n    <<: *d\n    pool_size: 7\n"
        "    auth: {token: t, environment_id: e}\n"
    )
    from gateway.config_yaml import parse_yaml

    data = parse_yaml(text, "merge.yaml")
    assert data["upstreams"]["bizzstream"]["pool_size"] == 7


def test_every_missing_variable_of_the_shipped_config_is_named() -> None:
    env = shipped_env()
    gone = ["BIZZSTREAM_TOKEN", "BEESWAX_URL", "BEESWAX_PASSWORD", "STREAMONE_PSK"]
    for name in gone:
        del env[name]
    with pytest.raises(ConfigError) as err:
        load_config(SHIPPED, env=env)
    for name in gone:
        assert f"environment variable {name} is not set" in str(err.value)
    assert len(err.value.problems) == len(gone), err.value.problems


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ("GATEWAY_LISTEN", "GATEWAY_LISTEN: expected host:port, got 'localhost'"),
        ("GATEWAY_OPS_LISTEN", "GATEWAY_OPS_LISTEN: expected host:port, got 'localhost'"),
        (
            "GATEWAY_ONBOARDING_LISTEN",
            "GATEWAY_ONBOARDING_LISTEN: expected host:port, got 'localhost'",
        ),
    ],
)
def test_a_bad_listen_variable_is_named_as_the_variable(var: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(SHIPPED, env={**shipped_env(), var: "localhost"})
    assert err.value.problems == (message,)


def test_there_is_one_file_per_case() -> None:
    assert len(INVALID) >= 15


def test_shipped_config_loads_with_the_contract_variables() -> None:
    config = load_config(SHIPPED, env=shipped_env())
    assert sorted(config.upstreams) == ["beeswax", "bizzstream", "buzzstream", "streamone"]
    assert config.redis.url is None
    assert config.listen_port == 8080
    buzz = config.upstreams["buzzstream"]
    assert [(p.name, p.limit, p.period, p.on_exceed) for p in buzz.rate_limits] == [
        ("per_account", 5, 1.0, "delay")
    ]


@pytest.mark.parametrize("missing", ["BIZZSTREAM_TOKEN", "STREAMONE_PSK", "BEESWAX_URL"])
def test_shipped_config_names_each_missing_variable(missing: str) -> None:
    env = shipped_env()
    del env[missing]
    with pytest.raises(ConfigError, match=f"environment variable {missing} is not set"):
        load_config(SHIPPED, env=env)


def test_env_overrides_listen_and_redis() -> None:
    env = {**shipped_env(), "GATEWAY_LISTEN": "0.0.0.0:9999", "REDIS_URL": "redis://r:6379/0",
           "GATEWAY_TOKEN_STORE_KEY": "k",
           "GATEWAY_ALLOW_UNAUTHENTICATED_CALLERS": "true"}  # fmt: skip
    config = load_config(SHIPPED, env=env)
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9999)
    assert config.redis.url is not None and config.redis.url.reveal() == "redis://r:6379/0"
    assert config.redis.shared_sessions  # REDIS_URL shares the upstream sessions


def test_shared_sessions_may_be_turned_off_without_a_key(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    off = "  on_error: local\n  shared_sessions: false"
    path.write_text(SHIPPED.read_text().replace("  on_error: local", off))
    env = {**shipped_env(), "REDIS_URL": "redis://r:6379/0"}
    with pytest.raises(ConfigError, match="token_store_key: required"):
        load_config(SHIPPED, env=env)
    assert not load_config(path, env=env).redis.shared_sessions


def test_secrets_are_masked_in_repr() -> None:
    config = load_config(SHIPPED, env=shipped_env())
    text = repr(config)
    for secret in ("standin-bizz-token", "standin-password", "standin-consumer-secret"):
        assert secret not in text
    assert "Secret('***')" in text
    assert repr(Secret("hunter2")) == "Secret('***')" and str(Secret("hunter2")) == "Secret('***')"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_check_config_cli_accepts_shipped_config() -> None:
    result = run_cli("check-config", env=shipped_env())
    assert result.returncode == 0, result.stderr
    assert "config ok: 4 upstreams" in result.stdout


def test_check_config_cli_names_the_bad_key() -> None:
    result = run_cli("check-config", "--config", str(HERE / "invalid" / "bad_timeout.yaml"), env={})
    assert result.returncode == 2
    assert "upstreams.bizzstream.timeouts.connect" in result.stderr


def test_check_config_cli_prints_every_problem() -> None:
    path = HERE / "invalid" / "several_mistakes.yaml"
    result = run_cli("check-config", "--config", str(path), env={})
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "config error: 5 problems", result.stderr
    listed = sorted(result.stderr.splitlines()[1:])
    assert listed == sorted(f"  - {message}" for message in expected_messages(path))


def test_check_config_cli_names_the_missing_variable_without_its_neighbours() -> None:
    env = shipped_env()
    del env["BUZZSTREAM_CONSUMER_SECRET"]
    result = run_cli("check-config", env=env)
    assert result.returncode == 2
    assert "BUZZSTREAM_CONSUMER_SECRET" in result.stderr
    assert "standin-bizz-token" not in result.stderr + result.stdout


def test_public_url_defaults_to_the_listen_address_when_its_variable_is_empty() -> None:
    config = load_config(SHIPPED, env={**shipped_env(), "GATEWAY_LISTEN": "127.0.0.1:9000"})
    assert config.public_url == "http://127.0.0.1:9000"
    config = load_config(
        SHIPPED, env={**shipped_env(), "GATEWAY_PUBLIC_URL": "https://gw.example/"}
    )
    assert config.public_url == "https://gw.example"


def test_problem_types_follow_public_url_unless_a_base_is_set() -> None:
    config = load_config(
        SHIPPED, env={**shipped_env(), "GATEWAY_PUBLIC_URL": "https://gw.example/"}
    )
    assert config.problem_base_url == "https://gw.example/problems"
    assert load_config(SHIPPED, env=shipped_env()).problem_base_url == (
        "http://127.0.0.1:8080/problems"
    )
    with pytest.raises(ConfigError, match="public_url: expected an absolute http") as err:
        load_config(SHIPPED, env={**shipped_env(), "GATEWAY_PUBLIC_URL": "gw.example"})
    # One mistake, one problem: the default problem base is not reported as well.
    assert "problem_base_url" not in str(err.value)


# --- exposure and callers (issue 10 items 1, 2) -----------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "10.0.0.7:8080", "gw.internal:80"])
def test_a_proxy_beyond_loopback_without_caller_tokens_refuses_to_start(listen: str) -> None:
    env = {**shipped_env(), "GATEWAY_LISTEN": listen}
    with pytest.raises(ConfigError) as err:
        load_config(SHIPPED, env=env)
    (message,) = err.value.problems
    assert message.startswith(f"GATEWAY_LISTEN: {listen.replace('[', '').replace(']', '')} is "
                              "not a loopback address and callers.tokens is empty")  # fmt: skip
    assert "call the upstreams with the gateway's credentials" in message  # the risk, named
    assert "allow_unauthenticated_callers: true" in message


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "127.0.0.2:1", "[::1]:8080", "localhost:80"])
def test_loopback_needs_no_caller_tokens(listen: str) -> None:
    config = load_config(SHIPPED, env={**shipped_env(), "GATEWAY_LISTEN": listen})
    assert config.caller_tokens == ()


def test_exposure_is_accepted_with_caller_tokens_or_the_explicit_opt_in(tmp_path: Path) -> None:
    env = {**shipped_env(), "GATEWAY_LISTEN": "0.0.0.0:8080"}
    opted_in = load_config(SHIPPED, env={**env, "GATEWAY_ALLOW_UNAUTHENTICATED_CALLERS": "true"})
    assert opted_in.listen_host == "0.0.0.0" and opted_in.caller_tokens == ()
    path = tmp_path / "gateway.yaml"
    path.write_text(
        SHIPPED.read_text()
        + "callers:\n  tokens:\n"
        + "    - {name: reports, token: tok-reports, users: [alice, 'bob@example.com', 42]}\n"
        + "    - {token: tok-admin, users: '*'}\n"
        + "    - {token: tok-shared-only, users: []}\n"
    )
    config = load_config(path, env=env)
    reports, admin, shared = config.caller_tokens
    assert reports.name == "reports" and reports.token == Secret("tok-reports")
    assert reports.users == frozenset({"alice", "bob@example.com", "42"})
    assert reports.may_act_for("alice") and not reports.may_act_for("carol")
    assert admin.name == "callers.tokens[1]" and admin.users is None and admin.may_act_for("x")
    assert shared.users == frozenset() and not shared.may_act_for("alice")
    assert "tok-reports" not in repr(config)

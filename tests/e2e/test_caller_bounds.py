"""Issue 10, what callers can hold and send: each test fails without its fix.

Connection, head, body and in-flight bounds live in the listener that
``gateway run`` builds, so those tests run the gateway as a real process; the
byte budget and the framing refusals are tested in-process. Raw sockets send
what an HTTP client library would not.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.server.app import create_app
from gateway.server.keys import METRICS
from tests.conftest import assert_problem, make_config, problem_reply
from tests.harness import Gateway, Standins, call, gateway_env, running_gateway, write_config


def _config(tmp_path: Path, server: dict[str, Any] | None = None, **bizz: Any) -> Path:
    def change(data: dict[str, Any]) -> None:
        if server:
            data["server"] = server
        data["upstreams"]["bizzstream"].update(bizz)

    return write_config(tmp_path, change)


@pytest.fixture
def gateway_of(standins: Standins) -> Iterator[Any]:
    """Start a gateway process with a given config file; stopped at the end."""
    started: list[Any] = []

    def start(config: Path) -> Gateway:
        cm = running_gateway(gateway_env(standins), config)
        started.append(cm)
        return cm.__enter__()

    yield start
    for cm in started:
        cm.__exit__(None, None, None)


def _connect(gw: Gateway) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _metric(gw: Gateway, name: str, **labels: str) -> float:
    _, _, body = call(gw, "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _problem_of(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/problem+json" in head, head
    return status, assert_problem(body)


# -- item 9: a caller that leaves cancels its upstream call ---------------------------


def test_a_caller_that_disconnects_cancels_the_upstream_call_and_frees_the_connection(
    gateway_of: Any, tmp_path: Path
) -> None:
    gw = gateway_of(_config(tmp_path, pool_size=1, timeouts={"pool": "500ms", "head": "30s"}))
    sock = _connect(gw)
    sock.sendall(b"GET /bizzstream/__fault/sleep?seconds=20 HTTP/1.1\r\nHost: gw\r\n\r\n")
    time.sleep(0.5)
    sock.close()
    time.sleep(0.3)
    # Before: the call held the only pool connection and the in-flight gauge for 20 s.
    assert _metric(gw, "gateway_inflight_requests", upstream="bizzstream") == 0
    status, _, _ = call(gw, "GET", "/bizzstream/__fault/echo")
    assert status == 200
    assert (
        _metric(
            gw, "gateway_requests_total", upstream="bizzstream", status="499",
            code="client_disconnected",
        )
        == 1
    )  # fmt: skip


# -- item 12: connections, request heads and bodies are bounded -----------------------


def test_connections_over_the_bound_get_a_503_problem_and_are_closed(
    gateway_of: Any, tmp_path: Path
) -> None:
    gw = gateway_of(_config(tmp_path, server={"max_connections": 4}))
    held = [_connect(gw) for _ in range(4)]
    time.sleep(0.2)
    extra = _connect(gw)
    status, problem = _problem_of(_read_all(extra))
    assert status == 503
    assert problem["code"] == "upstream_unavailable"
    assert "4 caller connections" in problem["detail"]
    for sock in [extra, *held]:
        sock.close()
    time.sleep(0.2)
    assert _metric(gw, "gateway_load_shed_total", reason="connections") == 1


def test_a_request_head_trickled_in_is_cut_at_the_head_timeout(
    gateway_of: Any, tmp_path: Path
) -> None:
    gw = gateway_of(_config(tmp_path, server={"head_timeout": "1s"}))
    idle = _connect(gw)
    slow = _connect(gw)
    started = time.monotonic()
    slow.sendall(b"GET /bizzstream/__fault/echo HTTP/1.1\r\nHost: gw\r\n")
    closed_at = None
    slow.settimeout(0.2)
    while time.monotonic() - started < 5:
        try:
            slow.sendall(b"X-Slow: 1\r\n")  # never ends the head
            if slow.recv(1024) == b"":
                closed_at = time.monotonic()
                break
        except TimeoutError:
            continue
        except OSError:
            closed_at = time.monotonic()
            break
    assert closed_at is not None, "the slow head was never cut"
    assert 0.8 < closed_at - started < 2.5
    assert _read_all(idle, 3.0) == b""  # the idle connection went at the same deadline
    slow.close()
    idle.close()


def test_a_request_body_that_does_not_arrive_in_time_is_408(
    gateway_of: Any, tmp_path: Path
) -> None:
    gw = gateway_of(_config(tmp_path, server={"body_timeout": "1s"}))
    sock = _connect(gw)
    started = time.monotonic()
    sock.sendall(
        b"POST /bizzstream/__fault/echo HTTP/1.1\r\nHost: gw\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a": '
    )
    sock.settimeout(5.0)
    first = sock.recv(65536)  # the answer comes at the deadline (the connection lingers on)
    answered = time.monotonic() - started
    raw = first + _read_all(sock, 0.5)
    sock.close()
    status, problem = _problem_of(raw)
    assert status == 408
    assert problem["code"] == "invalid_request"
    assert "did not arrive within 1s" in problem["detail"]
    assert 0.8 < answered < 3


# -- item 13 (shedding part): a bound on calls in flight -----------------------------


def test_calls_over_the_inflight_bound_are_refused_with_retry_after(
    gateway_of: Any, tmp_path: Path
) -> None:
    gw = gateway_of(_config(tmp_path, server={"max_inflight": 2}))
    busy = [_connect(gw) for _ in range(2)]
    for sock in busy:
        sock.sendall(b"GET /bizzstream/__fault/sleep?seconds=2 HTTP/1.1\r\nHost: gw\r\n\r\n")
    time.sleep(0.4)
    status, headers, body = call(gw, "GET", "/bizzstream/__fault/echo")
    assert status == 503
    assert headers["retry-after"] == "1"
    problem = assert_problem(body)
    assert problem["code"] == "upstream_unavailable"
    assert "calls in flight" in problem["detail"]
    for sock in busy:
        assert _read_all(sock, 5.0).startswith(b"HTTP/1.1 200")
        sock.close()
    assert _metric(gw, "gateway_load_shed_total", reason="inflight") == 1


# -- item 16: a malformed request is one WARNING line without the query ---------------


def test_a_malformed_request_is_logged_once_as_a_warning_without_the_query(
    gateway_of: Any, tmp_path: Path
) -> None:
    gw = gateway_of(_config(tmp_path))
    sock = _connect(gw)
    sock.sendall(
        b"GET /bizzstream/x?token=QUERYSECRET42 HTTP/1.1\r\nHost: gw\r\nBad header\r\n\r\n"
    )
    raw = _read_all(sock, 3.0)
    sock.close()
    assert raw.split(b" ", 2)[1] == b"400"
    time.sleep(0.3)
    logs = gw.logs()
    assert "QUERYSECRET42" not in logs
    assert "Traceback" not in logs
    lines = [line for line in gw.log_lines() if line.get("event") == "malformed_request"]
    assert len(lines) == 1, logs[-2000:]
    assert lines[0]["level"] == "warning"
    assert lines[0]["status"] == 400
    assert not [line for line in gw.log_lines() if line.get("level") == "error"]


# -- in-process: the byte budget (item 10), Expect (14), Transfer-Encoding (15) -------


async def _raw(client: Any, data: bytes, *, keep: bool = False) -> Any:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(data)
    await writer.drain()
    if keep:
        return reader, writer
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return raw


async def test_buffered_bodies_over_the_byte_budget_are_refused_with_retry_after(
    aiohttp_client: Any, standins: Standins, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path,
        lambda d: d.update(max_body_bytes=60_000, server={"max_buffered_bytes": 100_000}),
    )
    client = await aiohttp_client(create_app(make_config(standins, path)))
    # Beeswax buffers every body (a call may be replayed after a re-login).
    first = await _raw(
        client,
        b"POST /beeswax/__fault/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 60000\r\n\r\n" + b"a" * 1000,
        keep=True,
    )
    await asyncio.sleep(0.3)  # the first body's 60000 bytes are charged
    resp = await client.post("/beeswax/__fault/echo", data=b"b" * 60_000)
    problem = await problem_reply(resp, 503, "beeswax")
    assert problem["code"] == "upstream_unavailable"
    assert "100000 bytes of request bodies" in problem["detail"]
    assert resp.headers["Retry-After"] == "1"
    registry = client.server.app[METRICS].registry
    shed = registry.get_sample_value("gateway_load_shed_total", {"reason": "buffered_bytes"})
    assert shed == 1
    first[1].close()  # the first caller leaves: its charge is given back
    await asyncio.sleep(0.3)
    resp = await client.post("/beeswax/__fault/echo", data=b"c" * 60_000)
    assert resp.status == 200
    assert json.loads(await resp.read())["body"] == "c" * 60_000


@pytest.mark.parametrize(
    "expect", [b"bogus", b"100-continue, bogus", b"\xff\xfe100-continue"], ids=str
)
@pytest.mark.parametrize("path", [b"/bizzstream/__fault/echo", b"/healthz"])
async def test_an_unsupported_expect_is_a_417_problem_logged_and_counted(
    gateway_client: Any, expect: bytes, path: bytes
) -> None:
    raw = await _raw(
        gateway_client,
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: gw\r\nExpect: "
        + expect
        + b"\r\nConnection: close\r\n\r\n",
    )
    status, problem = _problem_of(raw)
    assert status == 417
    assert problem["code"] == "invalid_request"
    if path != b"/healthz":  # reserved paths stay out of the request metrics
        registry = gateway_client.server.app[METRICS].registry
        labels = {
            "upstream": "none",  # refused before routing
            "method": "GET",
            "status": "417",
            "code": "invalid_request",
        }
        assert registry.get_sample_value("gateway_requests_total", labels) == 1


async def test_which_refusal_wins_when_several_things_are_wrong(
    aiohttp_client: Any, standins: Standins, tmp_path: Path
) -> None:
    """A malformed X-Gateway-User first (400), then the framing (417), then the caller
    token (401): the order of the middlewares, whatever checks each."""
    path = write_config(
        tmp_path, lambda d: d.update(callers={"tokens": [{"token": "caller-1", "users": "*"}]})
    )
    client = await aiohttp_client(create_app(make_config(standins, path)))
    head = b"GET /bizzstream/__fault/echo HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
    bad_user, bad_expect = b"X-Gateway-User: " + b"a" * 200 + b"\r\n", b"Expect: bogus\r\n"
    wanted = [
        (bad_user + bad_expect, 400, "X-Gateway-User"),
        (b"X-Gateway-User: alice\r\n" + bad_expect, 417, "100-continue"),
        (b"X-Gateway-User: alice\r\n", 401, "caller token"),
    ]
    for headers, status, named in wanted:
        got, problem = _problem_of(await _raw(client, head + headers + b"\r\n"))
        assert (got, named in problem["detail"]) == (status, True), problem


async def test_expect_100_continue_still_works(gateway_client: Any) -> None:
    resp = await gateway_client.post("/bizzstream/__fault/echo", data=b'{"a": 1}', expect100=True)
    assert resp.status == 200


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"identity, chunked"])
async def test_a_transfer_coding_other_than_chunked_is_a_501_problem(
    gateway_client: Any, fresh_standins: Standins, coding: bytes
) -> None:
    raw = await _raw(
        gateway_client,
        b"POST /bizzstream/__fault/echo HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Transfer-Encoding: " + coding + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    status, problem = _problem_of(raw)
    assert status == 501
    assert problem["code"] == "invalid_request"
    assert not fresh_standins.seen("bizzstream")  # nothing reached the upstream

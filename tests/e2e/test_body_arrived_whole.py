"""A signed call's body that arrived with its head is taken at once
(``bodies._arrived_whole``), under the same bounds as one read chunk by chunk: the
upstream's ``max_body_bytes`` (a chunked body has no Content-Length to refuse it
early) and the byte budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.server.app import create_app
from tests.conftest import make_config, problem_reply
from tests.harness import Standins, write_config

ITEM = "/streamone/item/view"  # StreamOne signs its form body: the body is read whole


async def _gateway(aiohttp_client: Any, standins: Standins, tmp_path: Path) -> Any:
    path = write_config(tmp_path, lambda d: d["upstreams"]["streamone"].update(max_body_bytes=64))
    return await aiohttp_client(create_app(make_config(standins, path)))


async def test_a_chunked_body_over_the_bound_is_refused_even_when_it_came_whole(
    aiohttp_client: Any, standins: Standins, tmp_path: Path
) -> None:
    client = await _gateway(aiohttp_client, standins, tmp_path)

    async def one_piece(data: bytes) -> Any:  # no Content-Length: chunked, one chunk
        async def gen() -> Any:
            yield data

        return await client.post(ITEM, data=gen(), headers={"Content-Type": "application/json"})

    small = b'{"id": "item1"}'
    resp = await one_piece(small)
    assert resp.status == 200, await resp.text()
    big = b'{"id": "item1", "pad": "' + b"x" * 100 + b'"}'
    problem = await problem_reply(await one_piece(big), 413, "streamone")
    assert problem["code"] == "payload_too_large"
    # with a Content-Length, the same body is refused before it is read
    resp = await client.post(ITEM, data=big, headers={"Content-Type": "application/json"})
    assert (await problem_reply(resp, 413, "streamone"))["code"] == "payload_too_large"
    resp = await client.post(ITEM, data=small, headers={"Content-Type": "application/json"})
    assert resp.status == 200

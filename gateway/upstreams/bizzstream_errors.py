"""bizzstream: map error replies to the gateway's problem schema (contract §3)."""

from __future__ import annotations

from typing import Any

from gateway.core.errormap import generic_problem, parse_json
from gateway.core.messages import UpstreamReply
from gateway.core.problem import Problem

NAME = "bizzstream"


def parse_error(reply: UpstreamReply) -> Problem | None:
    if reply.status < 400:
        return None
    body = parse_json(reply.body)
    if isinstance(body, dict) and body.get("status") == "error":
        fields: dict[str, Any] = {}
        if isinstance(body.get("error"), str):
            fields["upstream_code"] = body["error"]
        if isinstance(body.get("userDescription"), str):
            fields["user_message"] = body["userDescription"]
        detail = body.get("description") or body.get("message")
        return generic_problem(NAME, reply, detail if isinstance(detail, str) else None, **fields)
    return generic_problem(NAME, reply)

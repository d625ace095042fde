"""buzzstream: map error replies to the gateway's problem schema (contract §3)."""

from __future__ import annotations

from gateway.core.errormap import generic_problem
from gateway.core.messages import UpstreamReply
from gateway.core.problem import Problem

NAME = "buzzstream"


def parse_error(reply: UpstreamReply) -> Problem | None:
    return generic_problem(NAME, reply) if reply.status >= 400 else None

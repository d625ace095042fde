"""Recorded error replies: ``tests/errors/fixtures/<upstream>/<case>.json``.

One file per case. Fields:

- ``about``, ``recorded_from``: what the case is and where the body came from
  (``stand-in``: recorded from the real stand-in; otherwise hand-made from
  ``upstreams.md`` or a stand-in's shape);
- ``status``, ``headers`` (``[[name, value], ...]``), ``body`` (the exact text),
  ``truncated`` (only a prefix was read);
- ``expect``: the expected problem fields (any field of the rendered body), or
  ``null`` when the reply is not an error and passes through;
- optional: ``detail_contains`` / ``detail_excludes`` (substrings), ``absent``
  (body fields that must not be there), ``loud`` (logged at error level),
  ``success_headers`` (Beeswax: the extra headers of a passed-through 2xx).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.messages import UpstreamReply

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass(frozen=True)
class Case:
    upstream: str
    name: str
    data: dict[str, Any]

    @property
    def reply(self) -> UpstreamReply:
        return UpstreamReply(
            status=int(self.data["status"]),
            headers=tuple((str(k), str(v)) for k, v in self.data.get("headers", [])),
            body=self.data["body"].encode("utf-8"),
            truncated=bool(self.data.get("truncated", False)),
        )

    @property
    def expect(self) -> dict[str, Any] | None:
        value = self.data["expect"]
        return None if value is None else dict(value)


def load_cases() -> list[Case]:
    return [
        Case(path.parent.name, path.stem, json.loads(path.read_text()))
        for path in sorted(FIXTURES.glob("*/*.json"))
    ]


def cases_per_upstream() -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in load_cases():
        counts[case.upstream] = counts.get(case.upstream, 0) + 1
    return counts

"""One module per upstream; adding a fifth upstream = one module + one line here."""

from __future__ import annotations

from gateway.upstreams import beeswax, bizzstream, buzzstream, streamone
from gateway.upstreams.base import UpstreamSpec

REGISTRY: dict[str, UpstreamSpec] = {
    spec.name: spec for spec in (bizzstream.SPEC, beeswax.SPEC, buzzstream.SPEC, streamone.SPEC)
}

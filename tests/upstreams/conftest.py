"""Each upstream-auth test leaves the process-wide secret registry as it found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.core import secrets


@pytest.fixture(autouse=True)
def restore_secret_registry() -> Iterator[None]:
    known = secrets.snapshot()
    yield
    secrets.restore(known)

"""A real Beeswax SDK from the package index, pointed at the gateway unchanged.

``beeswax-wrapper`` 1.1.9 (PyPI; requests underneath) logs in itself with
``POST <endpoint>authenticate`` and JSON ``{"email", "password"}`` and logs out
with ``DELETE <endpoint>authenticate`` (``BeeswaxAPI.authentication.delete()``).
Behind the gateway, both are answered by the gateway (the drop-in mode for
SDKs): the Beeswax success envelope, no cookie, nothing forwarded, and the
gateway's own session untouched. Real processes: stand-ins and a gateway.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from beeswax_wrapper import BeeswaxAPI, configure_endpoint
from beeswax_wrapper.core import access
from beeswax_wrapper.core.exceptions import BeeswaxRESTException

from tests.harness import Gateway, Standins, gateway_env, launch_gateway, launch_standins

SDK_EMAIL, SDK_PASSWORD = "sdk-user@example.com", "sdk-password-never-forwarded"


@pytest.fixture(scope="module")
def bees() -> Iterator[Standins]:
    standins = launch_standins()
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def gateway(bees: Standins) -> Iterator[Gateway]:
    gw = launch_gateway(gateway_env(bees))
    yield gw
    gw.stop()


@pytest.fixture
def api(gateway: Gateway, bees: Standins) -> BeeswaxAPI:
    bees.reset()
    access.BEESWAX_DAL = None  # the library keeps one DAL per process
    configure_endpoint(f"{gateway.url}/beeswax/rest/")
    return BeeswaxAPI(SDK_EMAIL, SDK_PASSWORD)  # logs in at once


def test_the_sdk_logs_in_works_and_logs_out_through_the_gateway(
    api: BeeswaxAPI, gateway: Gateway, bees: Standins
) -> None:
    assert api.advertisers.retrieve(advertiser_id=1)["advertiser_name"] == "Advertiser 1"
    created = api.advertisers.create("Made by the SDK", 1)
    assert created.startswith("advertiser created with ID")
    assert api.authentication.delete() is None  # the logout: success, no payload
    # The gateway's session was not touched by the SDK's logout.
    assert api.advertisers.retrieve(advertiser_id=1)["advertiser_id"] == 1

    seen = bees.seen("beeswax")
    assert [s["path"] for s in seen if "authenticate" in s["path"]] in ([], ["/rest/authenticate"])
    assert {s["principal"] for s in seen} == {"ops@example.com"}  # the gateway's account
    assert SDK_EMAIL not in str(seen) and SDK_PASSWORD not in str(seen)
    assert bees.stats("beeswax").get("login_failures", 0) == 0
    assert len(api.dal.session.cookies) == 0  # no cookie of any value reached the SDK
    assert SDK_PASSWORD not in gateway.logs()


def test_a_gateway_problem_surfaces_as_the_sdks_own_error(api: BeeswaxAPI) -> None:
    with pytest.raises(BeeswaxRESTException):
        api.advertisers.retrieve(advertiser_id=987654)  # nothing found: a 404 problem

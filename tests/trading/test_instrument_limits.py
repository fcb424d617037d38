"""Per-instrument order limits (#14): a maximum quantity and maximum and minimum prices, stored
on the instrument, published by the instruments API, and enforced at order entry with a 422
naming the limit and the figure."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.trading.domain import InstrumentLimitError, check_instrument_limits
from rampart.venue.domain import Instrument, InstrumentStatus
from tests.trading.support import fund, seed

ALICE = {"x-test-user": "alice"}
LIMITED = Instrument(
    "ACME",
    "Acme Corp",
    D("0.01"),
    D("1"),
    InstrumentStatus.ACTIVE,
    D("100.00"),
    max_quantity=D("1000000"),
    max_price=D("1000"),
    min_price=D("1"),
)


def _order(**fields: str) -> dict[str, str]:
    return {"symbol": "ACME", "side": "buy", "type": "limit", **fields}


@pytest.fixture
def limited_client(trader_client: TestClient, container: Container) -> TestClient:
    seed(container, LIMITED)
    fund(container, "alice", "9000000")
    return trader_client


def test_the_instruments_api_publishes_the_limits(limited_client: TestClient) -> None:
    listed = {i["symbol"]: i for i in limited_client.get("/v1/instruments", headers=ALICE).json()}
    acme = listed["ACME"]
    assert (acme["max_quantity"], acme["max_price"], acme["min_price"]) == ("1000000", "1000", "1")
    # An instrument without limits of its own says so (the platform's bounds apply).
    assert listed["FRAC"]["max_quantity"] is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"quantity": "2000000", "limit_price": "1.00"},
            "quantity 2,000,000 exceeds ACME's maximum order quantity of 1,000,000",
        ),
        (
            {"quantity": "1", "limit_price": "1000.01"},
            "limit_price 1,000.01 exceeds ACME's maximum price of 1,000",
        ),
        (
            {"quantity": "1", "limit_price": "0.99"},
            "limit_price 0.99 is below ACME's minimum price of 1",
        ),
        (
            {"type": "stop_limit", "quantity": "1", "limit_price": "10", "stop_price": "5000"},
            "stop_price 5,000 exceeds ACME's maximum price of 1,000",
        ),
    ],
)
def test_an_order_beyond_the_instruments_limits_is_a_422_naming_limit_and_figure(
    limited_client: TestClient, container: Container, fields: dict[str, str], message: str
) -> None:
    body = _order(**fields)
    refused = limited_client.post("/v1/orders", json=body, headers=ALICE)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "urn:rampart:problem:instrument-limit-exceeded"
    assert message in problem["detail"]
    # Refused before it became an order: nothing recorded, nothing reserved.
    assert limited_client.get("/v1/orders", headers=ALICE).json()["items"] == []
    assert limited_client.get("/v1/account", headers=ALICE).json()["reserved"] == "0"


def test_orders_at_the_limits_pass_them(limited_client: TestClient) -> None:
    """At the limits an order is entered (201); the account's own risk limits still decide it."""
    for fields in (
        {"quantity": "1000000", "limit_price": "1"},
        {"quantity": "1", "limit_price": "1000"},
    ):
        placed = limited_client.post("/v1/orders", json=_order(**fields), headers=ALICE)
        assert placed.status_code == 201, placed.text
    market = limited_client.post(
        "/v1/orders",
        json={"symbol": "ACME", "side": "buy", "type": "market", "quantity": "1000001"},
        headers=ALICE,
    )
    assert market.status_code == 422
    assert "maximum order quantity of 1,000,000" in market.json()["detail"]


def test_a_modification_beyond_the_limits_is_refused_and_the_order_is_unchanged(
    limited_client: TestClient,
) -> None:
    order = limited_client.post(
        "/v1/orders", json=_order(quantity="10", limit_price="99.50"), headers=ALICE
    ).json()
    for change, message in (
        ({"quantity": "1000001"}, "quantity 1,000,001 exceeds ACME's maximum order quantity"),
        ({"limit_price": "1500"}, "limit_price 1,500 exceeds ACME's maximum price of 1,000"),
    ):
        refused = limited_client.patch(f"/v1/orders/{order['id']}", json=change, headers=ALICE)
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["detail"]
    kept = limited_client.get(f"/v1/orders/{order['id']}", headers=ALICE).json()
    assert (kept["quantity"], kept["limit_price"]) == ("10", "99.5")
    assert limited_client.get("/v1/account", headers=ALICE).json()["reserved"] == "995"


def test_an_order_placed_before_a_tighter_limit_may_still_be_reduced(
    limited_client: TestClient, container: Container
) -> None:
    order = limited_client.post(
        "/v1/orders", json=_order(quantity="500", limit_price="99.50"), headers=ALICE
    ).json()
    seed(container, Instrument(**{**_fields(LIMITED), "max_quantity": D("100")}))
    reduced = limited_client.patch(
        f"/v1/orders/{order['id']}", json={"quantity": "400"}, headers=ALICE
    )
    assert reduced.status_code == 200, reduced.text
    grown = limited_client.patch(
        f"/v1/orders/{order['id']}", json={"quantity": "450"}, headers=ALICE
    )
    assert grown.status_code == 422
    assert "maximum order quantity of 100" in grown.json()["detail"]


def _fields(instrument: Instrument) -> dict[str, object]:
    return {name: getattr(instrument, name) for name in Instrument.__dataclass_fields__}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_quantity": D("0")}, "maximum quantity must be above 0"),
        ({"max_price": D("10000001")}, "at most 10,000,000"),
        ({"max_price": D("1.000000001")}, "at most 8 decimal places"),
        ({"max_quantity": D("0.5")}, "at least the lot size"),
        ({"min_price": D("2000")}, "must not exceed the maximum price"),
        ({"max_price": D("50")}, "reference price must not exceed the maximum price"),
        ({"min_price": D("150"), "max_price": D("200")}, "reference price must not be below"),
    ],
)
def test_limits_an_instrument_cannot_have(change: dict[str, D], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Instrument(**{**_fields(LIMITED), **change})


def test_without_limits_only_the_platform_bounds_apply() -> None:
    plain = Instrument("ACME", "Acme", D("0.01"), D("1"), InstrumentStatus.ACTIVE, D("100"))
    check_instrument_limits(plain, D("10000000"), D("10000000"), None)
    with pytest.raises(InstrumentLimitError):
        check_instrument_limits(LIMITED, None, None, D("0.5"))


def test_the_cli_defines_lists_and_validates_the_limits(container: Container) -> None:
    from tests.platform.test_cli_errors import assert_one_line_refusal, env_for, run

    env = env_for(container.settings.data_dir, container.settings.effective_database_url)
    define = ("trading", "define", "ACME", "--name", "Acme", "--price", "100")
    code, out, err = run(env, *define, "--max-quantity", "1000000", "--max-price", "1000")
    assert code == 0, out + err
    code, out, _ = run(env, "trading", "instruments")
    assert code == 0
    row = next(line for line in out.splitlines() if "ACME" in line)
    assert [cell.strip() for cell in row.split("│")][5:8] == ["1000000", "1000", "-"]
    with container.uow() as uow:
        stored = container.instruments.get(uow, "ACME")
    assert (stored.max_quantity, stored.max_price, stored.min_price) == (D(1000000), D(1000), None)
    for extra, naming in (
        (("--max-quantity", "lots"), "--max-quantity: not a decimal amount"),
        (("--max-price", "50"), "the reference price must not exceed the maximum price"),
        (("--max-price", "-5"), "the maximum price must be above 0"),
    ):
        assert_one_line_refusal(*run(env, *define, *extra), naming)
